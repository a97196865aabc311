"""Drives mcp-sessions' Streamable HTTP endpoint with the official MCP Python SDK (mcp 2.3.0):
the bearer header, tools without credentials, an argument credential refused, a bad token refused.

Usage: python3 tests/interop/python_sdk_http.py URL TOKEN USERNAME
Prints one line per step and exits non-zero at the first step that does not behave.
"""
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


def body(result):
    if result.structured_content is not None:
        return result.structured_content
    text = next(c.text for c in result.content if c.type == "text")
    return json.loads(text)


async def session_steps(url, token, username):
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with client:
        async with streamable_http_client(url, http_client=client) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                print("initialize:", init.server_info.name, "protocol", init.protocol_version)
                tools = await session.list_tools()
                names = sorted(t.name for t in tools.tools)
                print("tools:", len(names))
                assert "get-session" in names and "browser-navigate" in names, names
                me = await session.call_tool("get-session", {})
                assert not me.is_error, me
                me = body(me)
                assert me["username"] == username, me
                assert "accessToken" not in me, "a token handed to the model over HTTP"
                print("get-session: the bearer's session, user", me["username"])
                listed = body(await session.call_tool("list-sessions", {}))
                assert listed["count"] == 1, listed
                print("list-sessions:", listed["count"])
                refused = await session.call_tool("get-session", {"accessToken": "x"})
                assert refused.is_error and body(refused)["code"] == "INVALID_ARGUMENT", refused
                print("accessToken argument: refused with INVALID_ARGUMENT")


async def bad_token(url):
    client = create_mcp_http_client(headers={"Authorization": "Bearer mcps_" + "0" * 64})
    try:
        async with client:
            async with streamable_http_client(url, http_client=client) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await asyncio.wait_for(session.initialize(), 20)
    except BaseException as e:  # the SDK raises an exception group around the HTTP error
        text = repr(e)
        assert "401" in text or "nauthori" in text or "error response" in text, text
        print("a made-up token: refused (401)")
        return
    raise AssertionError("a made-up token was served")


async def main(url, token, username):
    await session_steps(url, token, username)
    await bad_token(url)
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
