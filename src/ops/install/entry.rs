//! The server's entry and the merge that puts it into a host's file: a pure function over an
//! order-preserving JSON document, so every other server, every other setting and the order of
//! the keys survive.

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Host;
use super::remote::RemoteTarget;

/// A JSON value whose objects keep their keys in the order of the file, so that rewriting a
/// host's configuration changes nothing but the entry (serde_json's own map sorts the keys).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn string(value: &str) -> Self {
        Self::String(value.to_owned())
    }

    /// `text` as pretty-printed JSON with a final newline.
    pub fn to_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The value under `key`, if the object has one.
fn member_mut<'a>(object: &'a mut [(String, Json)], key: &str) -> Option<&'a mut Json> {
    object.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Sets `key` to `value`, in place when the key exists (its position is kept).
fn set_member(object: &mut Vec<(String, Json)>, key: &str, value: Json) {
    match member_mut(object, key) {
        Some(slot) => *slot = value,
        None => object.push((key.to_owned(), value)),
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Number(n) => n.serialize(serializer),
            Self::String(s) => serializer.serialize_str(s),
            Self::Array(items) => serializer.collect_seq(items),
            Self::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonVisitor;

        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }

            fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
                Ok(Json::Bool(value))
            }

            fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
                Ok(Json::Number(value.into()))
            }

            fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
                Ok(Json::Number(value.into()))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(value)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("a number JSON cannot hold"))
            }

            fn visit_str<E>(self, value: &str) -> Result<Json, E> {
                Ok(Json::string(value))
            }

            fn visit_string<E>(self, value: String) -> Result<Json, E> {
                Ok(Json::String(value))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut members = Vec::new();
                // A repeated key keeps its first position and its last value, as parsers agree.
                while let Some((key, value)) = map.next_entry::<String, Json>()? {
                    set_member(&mut members, &key, value);
                }
                Ok(Json::Object(members))
            }
        }

        deserializer.deserialize_any(JsonVisitor)
    }
}

/// The environment variable naming the bootstrap user's password file.
pub(super) const PASSWORD_FILE_VAR: &str = "MCP_SESSIONS_PASSWORD_FILE";
/// A password in the entry itself: replaced by the file whenever a bootstrap user is installed.
pub(super) const PASSWORD_VAR: &str = "MCP_SESSIONS_PASSWORD";

/// The server's entry in a host's configuration: a command the host starts, or a URL it
/// connects to.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEntry {
    Stdio(StdioEntry),
    Remote(RemoteEntry),
}

/// A server the host starts and speaks to over stdio.
#[derive(Debug, Clone, PartialEq)]
pub struct StdioEntry {
    pub command: String,
    pub args: Vec<String>,
    /// Environment variables in the order they are written; never a password.
    pub env: Vec<(String, String)>,
}

/// A server the host reaches over Streamable HTTP. The `Authorization` header names the
/// variable the host reads the token from, in the host's syntax: the file never holds a token.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEntry {
    pub url: String,
    /// `Bearer ${MCP_SESSIONS_TOKEN}` or the host's equivalent.
    pub authorization: String,
}

impl RemoteEntry {
    /// The entry `host` needs to reach `target`; the error says why the host's file cannot hold
    /// a remote server and what to do instead.
    pub fn new(host: Host, target: &RemoteTarget) -> Result<Self, &'static str> {
        let reference = host.env_reference(target.token_env.as_str())?;
        Ok(Self {
            url: target.url.as_str().to_owned(),
            authorization: format!("Bearer {reference}"),
        })
    }
}

/// The keys only a stdio entry has, and those only a remote one has: writing one form removes
/// the other's, so that a host never sees both a command and a URL.
const STDIO_KEYS: &[&str] = &["command", "args", "env"];
const REMOTE_KEYS: &[&str] = &["url", "headers"];
const AUTHORIZATION: &str = "Authorization";

impl ServerEntry {
    /// The entry as `host` spells it.
    pub fn to_json(&self, host: Host) -> Json {
        let mut members = Vec::new();
        if host.names_transport() {
            members.push(("type".to_owned(), Json::string(self.transport())));
        }
        match self {
            Self::Stdio(stdio) => {
                members.push(("command".to_owned(), Json::string(&stdio.command)));
                members.push(("args".to_owned(), stdio.args_json()));
                if !stdio.env.is_empty() {
                    members.push(("env".to_owned(), stdio.env_json()));
                }
            }
            Self::Remote(remote) => {
                members.push(("url".to_owned(), Json::string(&remote.url)));
                members.push(("headers".to_owned(), remote.headers_json()));
            }
        }
        Json::Object(members)
    }

    /// The `type` of the hosts that name the transport.
    fn transport(&self) -> &'static str {
        match self {
            Self::Stdio(_) => "stdio",
            Self::Remote(_) => "http",
        }
    }

    /// Writes this entry over `existing`, keeping the keys it does not own.
    fn merge_into(&self, existing: &mut Vec<(String, Json)>, host: Host) {
        if host.names_transport() {
            set_member(existing, "type", Json::string(self.transport()));
        } else {
            // Not written by us, and one left from the other form could contradict this one.
            existing.retain(|(k, _)| k != "type");
        }
        match self {
            Self::Stdio(stdio) => {
                existing.retain(|(k, _)| !REMOTE_KEYS.contains(&k.as_str()));
                stdio.merge_into(existing);
            }
            Self::Remote(remote) => {
                existing.retain(|(k, _)| !STDIO_KEYS.contains(&k.as_str()));
                remote.merge_into(existing);
            }
        }
    }
}

impl StdioEntry {
    fn args_json(&self) -> Json {
        Json::Array(self.args.iter().map(|a| Json::string(a)).collect())
    }

    fn env_json(&self) -> Json {
        Json::Object(
            self.env
                .iter()
                .map(|(k, v)| (k.clone(), Json::string(v)))
                .collect(),
        )
    }

    /// The command and arguments become these; the environment gains these variables.
    fn merge_into(&self, existing: &mut Vec<(String, Json)>) {
        set_member(existing, "command", Json::string(&self.command));
        set_member(existing, "args", self.args_json());
        if self.env.is_empty() {
            return;
        }
        match member_mut(existing, "env") {
            Some(Json::Object(env)) => {
                for (k, v) in &self.env {
                    set_member(env, k, Json::string(v));
                }
                if self.env.iter().any(|(k, _)| k == PASSWORD_FILE_VAR) {
                    env.retain(|(k, _)| k != PASSWORD_VAR);
                }
            }
            Some(other) => *other = self.env_json(),
            None => existing.push(("env".to_owned(), self.env_json())),
        }
    }
}

impl RemoteEntry {
    fn headers_json(&self) -> Json {
        Json::Object(vec![(
            AUTHORIZATION.to_owned(),
            Json::string(&self.authorization),
        )])
    }

    /// The URL becomes this one; the headers keep every other header, and exactly one
    /// `Authorization` (header names are case-insensitive, so `authorization` is the same one).
    fn merge_into(&self, existing: &mut Vec<(String, Json)>) {
        set_member(existing, "url", Json::string(&self.url));
        let Some(Json::Object(headers)) = member_mut(existing, "headers") else {
            set_member(existing, "headers", self.headers_json());
            return;
        };
        let mut found = false;
        headers.retain_mut(|(k, v)| {
            if !k.eq_ignore_ascii_case(AUTHORIZATION) {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            *k = AUTHORIZATION.to_owned();
            *v = Json::string(&self.authorization);
            true
        });
        if !found {
            headers.push((AUTHORIZATION.to_owned(), Json::string(&self.authorization)));
        }
    }
}

/// Puts `entry` under `name` in the host's server list of `document` (a new document when
/// `None`), keeping everything else. An existing entry of that name keeps its other keys (a
/// stdio entry its other environment variables, a remote one its other headers); its transport,
/// command and arguments, or URL and `Authorization`, become the new ones, and the other form's
/// keys go. The error says why the document cannot take an entry.
pub fn merge_entry(
    document: Option<Json>,
    host: Host,
    name: &str,
    entry: &ServerEntry,
) -> Result<Json, String> {
    let mut document = document.unwrap_or(Json::Object(Vec::new()));
    let Json::Object(top) = &mut document else {
        return Err("the top level is not a JSON object".into());
    };
    let key = host.servers_key();
    if member_mut(top, key).is_none() {
        top.push((key.to_owned(), Json::Object(Vec::new())));
    }
    let Some(Json::Object(servers)) = member_mut(top, key) else {
        return Err(format!("`{key}` is not a JSON object"));
    };
    match member_mut(servers, name) {
        Some(Json::Object(existing)) => entry.merge_into(existing, host),
        Some(other) => *other = entry.to_json(host),
        None => servers.push((name.to_owned(), entry.to_json(host))),
    }
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::super::DEFAULT_ENTRY_NAME;
    use super::*;

    fn parse(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    fn entry() -> ServerEntry {
        ServerEntry::Stdio(StdioEntry {
            command: "/opt/bin/mcp-sessions".into(),
            args: vec![],
            env: vec![
                ("MCP_SESSIONS_USER".into(), "alice".into()),
                (
                    PASSWORD_FILE_VAR.into(),
                    "/home/a/.config/alice.password".into(),
                ),
            ],
        })
    }

    fn to_value(json: &Json) -> serde_json::Value {
        serde_json::from_str(&json.to_pretty()).unwrap()
    }

    #[test]
    fn keeps_other_servers_settings_and_key_order() {
        let original = parse(
            r#"{"zeta": 1, "mcpServers": {"other": {"command": "x", "args": ["-y"]}}, "alpha": {"b": [1, 2.5, null, true], "a": "s"}}"#,
        );
        let merged = merge_entry(
            Some(original),
            Host::ClaudeDesktop,
            DEFAULT_ENTRY_NAME,
            &entry(),
        )
        .unwrap();
        let text = merged.to_pretty();
        let keys: Vec<usize> = ["\"zeta\"", "\"mcpServers\"", "\"alpha\"", "\"b\"", "\"a\""]
            .iter()
            .map(|k| text.find(k).unwrap())
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "order changed:\n{text}"
        );
        let value = to_value(&merged);
        assert_eq!(value["mcpServers"]["other"]["args"][0], "-y");
        assert_eq!(value["alpha"]["b"][1], 2.5);
        assert_eq!(
            value["mcpServers"]["mcp-sessions"]["command"],
            "/opt/bin/mcp-sessions"
        );
        assert_eq!(
            value["mcpServers"]["mcp-sessions"]["env"]["MCP_SESSIONS_USER"],
            "alice"
        );
        assert!(value["mcpServers"]["mcp-sessions"].get("type").is_none());
    }

    #[test]
    fn merging_twice_changes_nothing() {
        let once = merge_entry(None, Host::Vscode, DEFAULT_ENTRY_NAME, &entry()).unwrap();
        let twice = merge_entry(
            Some(once.clone()),
            Host::Vscode,
            DEFAULT_ENTRY_NAME,
            &entry(),
        )
        .unwrap();
        assert_eq!(once, twice);
        let value = to_value(&once);
        assert_eq!(value["servers"]["mcp-sessions"]["type"], "stdio");
        assert!(value.get("mcpServers").is_none());
    }

    #[test]
    fn an_existing_entry_keeps_its_extra_keys_and_loses_an_inline_password() {
        let original = parse(
            r#"{"mcpServers": {"mcp-sessions": {"command": "old", "args": ["--demo"], "disabled": false,
                "env": {"CHROME_PATH": "/usr/bin/chromium", "MCP_SESSIONS_PASSWORD": "hunter2hunter2hunter2"}}}}"#,
        );
        let merged =
            merge_entry(Some(original), Host::Cursor, DEFAULT_ENTRY_NAME, &entry()).unwrap();
        let value = to_value(&merged);
        let server = &value["mcpServers"]["mcp-sessions"];
        assert_eq!(server["command"], "/opt/bin/mcp-sessions");
        assert_eq!(server["args"], serde_json::json!([]));
        assert_eq!(server["disabled"], false);
        assert_eq!(server["env"]["CHROME_PATH"], "/usr/bin/chromium");
        assert!(server["env"].get(PASSWORD_VAR).is_none());
        assert!(!merged.to_pretty().contains("hunter2"));
    }

    #[test]
    fn refuses_documents_that_cannot_hold_an_entry() {
        assert!(merge_entry(Some(parse("[1]")), Host::Cursor, "x", &entry()).is_err());
        let err = merge_entry(
            Some(parse(r#"{"servers": []}"#)),
            Host::Vscode,
            "x",
            &entry(),
        )
        .unwrap_err();
        assert!(err.contains("servers"), "{err}");
    }

    #[test]
    fn claude_code_entries_name_their_transport() {
        let value = to_value(&merge_entry(None, Host::ClaudeCode, "s", &entry()).unwrap());
        assert_eq!(value["mcpServers"]["s"]["type"], "stdio");
    }

    fn remote(host: Host, token_env: &str) -> ServerEntry {
        let target = RemoteTarget {
            url: "https://mcp.example.com/mcp".parse().unwrap(),
            token_env: token_env.parse().unwrap(),
        };
        ServerEntry::Remote(RemoteEntry::new(host, &target).unwrap())
    }

    #[test]
    fn remote_entries_in_each_hosts_shape() {
        let expected = [
            (
                Host::ClaudeCode,
                serde_json::json!({"mcpServers": {"s": {"type": "http", "url": "https://mcp.example.com/mcp",
                    "headers": {"Authorization": "Bearer ${MCP_SESSIONS_TOKEN}"}}}}),
            ),
            (
                Host::Vscode,
                serde_json::json!({"servers": {"s": {"type": "http", "url": "https://mcp.example.com/mcp",
                    "headers": {"Authorization": "Bearer ${env:MCP_SESSIONS_TOKEN}"}}}}),
            ),
            (
                Host::Cursor,
                serde_json::json!({"mcpServers": {"s": {"url": "https://mcp.example.com/mcp",
                    "headers": {"Authorization": "Bearer ${env:MCP_SESSIONS_TOKEN}"}}}}),
            ),
        ];
        for (host, expected) in expected {
            let entry = remote(host, "MCP_SESSIONS_TOKEN");
            let once = merge_entry(None, host, "s", &entry).unwrap();
            assert_eq!(to_value(&once), expected, "{host:?}");
            let twice = merge_entry(Some(once.clone()), host, "s", &entry).unwrap();
            assert_eq!(once, twice, "{host:?}: merging twice changed the file");
        }
    }

    #[test]
    fn switching_forms_drops_the_other_forms_keys_and_keeps_the_rest() {
        let original = parse(
            r#"{"mcpServers": {"mcp-sessions": {"type": "stdio", "command": "old", "args": [], "disabled": false,
                "env": {"MCP_SESSIONS_USER": "alice"},
                "headers": {"X-Trace": "1", "authorization": "Bearer stale", "AUTHORIZATION": "Bearer older"}}}}"#,
        );
        let to_remote = merge_entry(
            Some(original),
            Host::Cursor,
            DEFAULT_ENTRY_NAME,
            &remote(Host::Cursor, "WORK_TOKEN"),
        )
        .unwrap();
        assert_eq!(
            to_value(&to_remote)["mcpServers"]["mcp-sessions"],
            serde_json::json!({"disabled": false, "headers": {"X-Trace": "1",
                "Authorization": "Bearer ${env:WORK_TOKEN}"}, "url": "https://mcp.example.com/mcp"})
        );
        let text = to_remote.to_pretty();
        assert!(!text.contains("stale") && !text.contains("older"), "{text}");

        let back =
            merge_entry(Some(to_remote), Host::Cursor, DEFAULT_ENTRY_NAME, &entry()).unwrap();
        let server = &to_value(&back)["mcpServers"]["mcp-sessions"];
        assert_eq!(server["command"], "/opt/bin/mcp-sessions");
        assert_eq!(server["disabled"], false);
        assert!(
            server.get("url").is_none() && server.get("headers").is_none(),
            "{server}"
        );
    }
}
