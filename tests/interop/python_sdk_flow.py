"""Drives mcp-sessions with the official MCP Python SDK (pip install mcp): the demo flow.

Usage: python3 tests/clients/python_sdk_flow.py PATH_TO_BINARY [URL_OF_A_PAGE]
Prints one line per step and exits non-zero at the first step that does not behave.
"""
import asyncio
import json
import os
import sys
import tempfile

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def body(result):
    if result.structured_content is not None:
        return result.structured_content
    text = next(c.text for c in result.content if c.type == "text")
    return json.loads(text)


async def main(binary, page_url):
    dirs = tempfile.mkdtemp(prefix="mcp-sessions-py-")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MCP_SESSIONS_DATA_DIR": os.path.join(dirs, "data"),
        "MCP_SESSIONS_CONFIG_DIR": os.path.join(dirs, "config"),
    }
    if os.environ.get("CHROME_PATH"):
        env["CHROME_PATH"] = os.environ["CHROME_PATH"]
    params = StdioServerParameters(command=binary, args=["--demo"], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            print("initialize:", init.server_info.name, init.server_info.version)
            tools = await session.list_tools()
            names = sorted(t.name for t in tools.tools)
            print("tools:", len(names))
            assert "create-session" in names and "browser-navigate" in names, names

            created = await session.call_tool("create-session", {"username": "demo", "password": "demo123!"})
            assert not created.is_error, created
            sid = body(created)["sessionId"]
            print("create-session: ok, roles", body(created)["roles"])

            status = await session.call_tool("get-session", {"sessionId": sid})
            assert not status.is_error and body(status)["status"] == "active", status
            print("get-session: active until", body(status)["expiresAt"])

            refused = await session.call_tool("get-session", {"sessionId": "not-an-id"})
            assert refused.is_error and body(refused)["code"] == "INVALID_SESSION_ID", refused
            print("malformed id:", body(refused)["code"])

            if page_url:
                ctx = await session.call_tool("create-browser-context", {"sessionId": sid})
                assert not ctx.is_error, ctx
                cid = body(ctx)["contextId"]
                nav = await session.call_tool("browser-navigate", {"sessionId": sid, "contextId": cid, "url": page_url})
                assert not nav.is_error, nav
                print("browser-navigate:", body(nav)["status"], body(nav)["title"])
                shot = await session.call_tool("browser-screenshot", {"sessionId": sid, "contextId": cid})
                assert not shot.is_error and any(c.type == "image" for c in shot.content), shot
                print("browser-screenshot: image", next(c.mime_type for c in shot.content if c.type == "image"))
                closed = await session.call_tool("close-browser-context", {"sessionId": sid, "contextId": cid})
                assert not closed.is_error, closed

            deleted = await session.call_tool("delete-session", {"sessionId": sid})
            assert not deleted.is_error, deleted
            gone = await session.call_tool("get-session", {"sessionId": sid})
            assert gone.is_error and body(gone)["code"] == "SESSION_NOT_FOUND", gone
            print("delete-session: ok; afterwards", body(gone)["code"])
    print("python sdk flow: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
