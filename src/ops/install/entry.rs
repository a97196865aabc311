//! The server's entry and the merge that puts it into a host's file: a pure function over an
//! order-preserving JSON document, so every other server, every other setting and the order of
//! the keys survive.

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Host;

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

/// The server's entry in a host's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEntry {
    pub command: String,
    pub args: Vec<String>,
    /// Environment variables in the order they are written; never a password.
    pub env: Vec<(String, String)>,
}

impl ServerEntry {
    /// The entry as `host` spells it.
    pub fn to_json(&self, host: Host) -> Json {
        let mut members = Vec::new();
        if host.names_transport() {
            members.push(("type".to_owned(), Json::string("stdio")));
        }
        members.push(("command".to_owned(), Json::string(&self.command)));
        members.push((
            "args".to_owned(),
            Json::Array(self.args.iter().map(|a| Json::string(a)).collect()),
        ));
        if !self.env.is_empty() {
            members.push(("env".to_owned(), self.env_json()));
        }
        Json::Object(members)
    }

    fn env_json(&self) -> Json {
        Json::Object(
            self.env
                .iter()
                .map(|(k, v)| (k.clone(), Json::string(v)))
                .collect(),
        )
    }
}

/// Puts `entry` under `name` in the host's server list of `document` (a new document when
/// `None`), keeping everything else. An existing entry of that name keeps its other keys and
/// environment variables; its transport, command and arguments become the new ones. The error
/// says why the document cannot take an entry.
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
        Some(Json::Object(existing)) => {
            if host.names_transport() {
                set_member(existing, "type", Json::string("stdio"));
            }
            set_member(existing, "command", Json::string(&entry.command));
            set_member(
                existing,
                "args",
                Json::Array(entry.args.iter().map(|a| Json::string(a)).collect()),
            );
            if !entry.env.is_empty() {
                match member_mut(existing, "env") {
                    Some(Json::Object(env)) => {
                        for (k, v) in &entry.env {
                            set_member(env, k, Json::string(v));
                        }
                        if entry.env.iter().any(|(k, _)| k == PASSWORD_FILE_VAR) {
                            env.retain(|(k, _)| k != PASSWORD_VAR);
                        }
                    }
                    Some(other) => *other = entry.env_json(),
                    None => existing.push(("env".to_owned(), entry.env_json())),
                }
            }
        }
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
        ServerEntry {
            command: "/opt/bin/mcp-sessions".into(),
            args: vec![],
            env: vec![
                ("MCP_SESSIONS_USER".into(), "alice".into()),
                (
                    PASSWORD_FILE_VAR.into(),
                    "/home/a/.config/alice.password".into(),
                ),
            ],
        }
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
}
