//! What tools/list shows: a summary of each tool's generated schemas, small enough for a model's
//! context on every turn.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::Value;

/// What a tool may do to its world, as MCP's hints, which hosts use to decide what to confirm
/// with the user. In one table, so that a reviewer sees at a glance which tools only read, which
/// destroy and which reach the open web.
enum Hints {
    /// Reads, and stays inside the server (readOnlyHint, openWorldHint false).
    ReadOnly,
    /// Changes something: whether it destroys, whether repeating it changes nothing more, and
    /// whether it reaches beyond the server (the web).
    Acts {
        destructive: bool,
        idempotent: bool,
        open_world: bool,
    },
}

const READS: Hints = Hints::ReadOnly;

const HINTS: &[(&str, Hints)] = &[
    ("create-session", acts(false, false, false)),
    ("list-sessions", READS),
    ("get-session", READS),
    ("refresh-session", acts(false, false, false)),
    ("delete-session", acts(true, true, false)),
    ("create-browser-context", acts(false, false, false)),
    ("list-browser-contexts", READS),
    ("close-browser-context", acts(true, false, false)),
    ("browser-navigate", acts(false, false, true)),
    ("browser-screenshot", READS),
    ("browser-read", READS),
    ("browser-click", acts(false, false, true)),
    ("browser-type", acts(false, false, true)),
    ("browser-wait-for", READS),
    ("browser-evaluate", acts(true, false, true)),
];

const fn acts(destructive: bool, idempotent: bool, open_world: bool) -> Hints {
    Hints::Acts {
        destructive,
        idempotent,
        open_world,
    }
}

/// The annotations of the tool `name`; `None` for a tool missing from [`HINTS`] (a unit test
/// keeps that from happening).
fn hints(name: &str) -> Option<ToolAnnotations> {
    let (_, hints) = HINTS.iter().find(|(tool, _)| *tool == name)?;
    Some(match *hints {
        Hints::ReadOnly => ToolAnnotations::from_raw(None, Some(true), None, None, Some(false)),
        Hints::Acts {
            destructive,
            idempotent,
            open_world,
        } => ToolAnnotations::from_raw(
            None,
            Some(false),
            Some(destructive),
            Some(idempotent),
            Some(open_world),
        ),
    })
}

/// What tools/list shows of a tool's generated schemas. Hosts put tools/list in the model's context
/// on every turn, so it carries what a caller needs to build a call (types, descriptions, enums,
/// numeric ranges, required names, nesting) and nothing twice:
/// - `$ref`s are written out in place and `$defs` go;
/// - an optional argument is shown as its type alone: leaving it out is how a caller says "none"
///   (the server still takes `null` for it);
/// - the rules the server enforces and names in its errors (lengths, id patterns, unknown names:
///   see `validation`) stay in the generated schema it validates against, not in the listing;
/// - `$schema` goes (draft 2020-12 is MCP's default), and schemars' Rust integer formats
///   (`uint16`, …), which JSON Schema does not define and strict clients flag, give way to the
///   `minimum`/`maximum` that already bound the value;
/// - an output schema names the fields every result has (`required`); the result itself shows
///   their values.
///
/// Whatever the listing accepts, validation accepts too, except for the enforced rules above.
pub(super) fn advertise(tool: &mut Tool) {
    tool.annotations = hints(&tool.name);
    tool.input_schema = Arc::new(advertised(&tool.input_schema));
    if let Some(output) = &tool.output_schema {
        let mut shown = JsonObject::new();
        shown.insert("type".into(), Value::from("object"));
        if let Some(required) = output.get("required") {
            shown.insert("required".into(), required.clone());
        }
        tool.output_schema = Some(Arc::new(shown));
    }
}

/// Keywords an input schema shows nowhere in tools/list (see [`advertise`]).
const UNSHOWN: &[&str] = &[
    "$schema",
    "$defs",
    "title",
    "minLength",
    "maxLength",
    "pattern",
    "additionalProperties",
];

/// `schema` with its `$ref`s resolved against its `$defs`, optional properties shown without their
/// `null`, and the [`UNSHOWN`] keywords removed at every level.
fn advertised(schema: &JsonObject) -> JsonObject {
    let defs = schema.get("$defs").and_then(Value::as_object);
    let mut value = Value::Object(schema.clone());
    rewrite(&mut value, defs, 0);
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// Rewrites one subschema (see [`advertised`]); `depth` bounds a `$ref` that refers to itself.
fn rewrite(value: &mut Value, defs: Option<&JsonObject>, depth: usize) {
    const MAX_DEPTH: usize = 16;
    let Value::Object(map) = value else {
        if let Value::Array(items) = value {
            items.iter_mut().for_each(|i| rewrite(i, defs, depth));
        }
        return;
    };
    if let Some(target) = map.get("$ref").and_then(Value::as_str) {
        let name = target.strip_prefix("#/$defs/").unwrap_or(target);
        if let Some(Value::Object(def)) = defs.and_then(|d| d.get(name))
            && depth < MAX_DEPTH
        {
            map.remove("$ref");
            for (key, value) in def {
                map.entry(key.clone()).or_insert_with(|| value.clone());
            }
            rewrite(value, defs, depth + 1);
            return;
        }
    }
    for key in UNSHOWN {
        // `properties` maps names to schemas, so a property named like a keyword stays.
        map.remove(*key);
    }
    if map.get("format").and_then(Value::as_str).is_some_and(|f| {
        f.starts_with("uint") || f.starts_with("int") || f == "double" || f == "float"
    }) {
        map.remove("format");
    }
    let required: Vec<String> = map
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    for (key, child) in map.iter_mut() {
        match (key.as_str(), child) {
            ("properties", Value::Object(properties)) => {
                for (name, property) in properties.iter_mut() {
                    if !required.contains(name) {
                        without_null(property);
                    }
                    rewrite(property, defs, depth);
                }
            }
            ("enum" | "const" | "default" | "examples", _) => {}
            (_, child) => rewrite(child, defs, depth),
        }
    }
}

/// Shows an optional property as its type alone: `["string", "null"]` becomes `"string"`, and
/// `anyOf: [X, {"type": "null"}]` becomes X.
fn without_null(property: &mut Value) {
    let Value::Object(map) = property else { return };
    if let Some(Value::Array(kinds)) = map.get_mut("type") {
        kinds.retain(|k| k != "null");
        if kinds.len() == 1 {
            let kind = kinds.remove(0);
            map.insert("type".into(), kind);
        }
    }
    let is_null = |v: &Value| v.get("type").is_some_and(|t| t == "null");
    if let Some(Value::Array(options)) = map.get("anyOf")
        && options.len() == 2
        && options.iter().any(is_null)
        && let Some(Value::Object(other)) = options.iter().find(|o| !is_null(o)).cloned()
    {
        map.remove("anyOf");
        for (key, value) in other {
            map.entry(key).or_insert(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn advertised_inlines_refs_drops_null_and_unshown_rules_but_keeps_property_names() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "pattern": {"description": "A property named like a keyword.", "type": "string",
                            "pattern": "^a$", "maxLength": 3},
                "mode": {"description": "Optional.", "anyOf": [{"$ref": "#/$defs/Mode"}, {"type": "null"}]},
                "count": {"description": "Optional.", "type": ["integer", "null"], "format": "uint16",
                          "minimum": 0, "maximum": 9},
                "loop": {"description": "Refers to itself.", "$ref": "#/$defs/Loop"},
                "needed": {"description": "Required and nullable.", "type": ["string", "null"]}
            },
            "required": ["pattern", "needed"],
            "$defs": {
                "Mode": {"enum": ["a", "b"], "type": "string"},
                "Loop": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Loop"}}}
            }
        });
        let Value::Object(schema) = schema else {
            unreachable!()
        };
        let shown = Value::Object(advertised(&schema));
        let properties = &shown["properties"];
        assert_eq!(
            properties["pattern"],
            json!({"description": "A property named like a keyword.", "type": "string"})
        );
        assert_eq!(
            properties["mode"],
            json!({"description": "Optional.", "enum": ["a", "b"], "type": "string"})
        );
        assert_eq!(
            properties["count"],
            json!({"description": "Optional.", "type": "integer", "minimum": 0, "maximum": 9})
        );
        assert_eq!(properties["needed"]["type"], json!(["string", "null"]));
        assert_eq!(shown["required"], json!(["pattern", "needed"]));
        for gone in ["$schema", "$defs", "additionalProperties"] {
            assert!(shown.get(gone).is_none(), "{gone} is still shown: {shown}");
        }
        // A self-referring definition is written out a bounded number of times.
        let text = shown.to_string();
        assert!(text.len() < 4096, "{text}");
    }

    #[test]
    fn every_listed_tool_is_plain_json_schema_with_hints() {
        let tools = super::super::McpSessions::all_tools().list_all();
        for (name, _) in HINTS {
            assert!(
                tools.iter().any(|t| t.name == *name),
                "HINTS names {name}, which is no tool"
            );
        }
        for mut tool in tools {
            advertise(&mut tool);
            let text = Value::Object(tool.input_schema.as_ref().clone()).to_string();
            for absent in ["$ref", "$defs", "\"null\"", "pattern", "maxLength", "uint"] {
                assert!(!text.contains(absent), "{}: {absent} in {text}", tool.name);
            }
            assert!(
                tool.annotations.is_some(),
                "{} has no row in HINTS",
                tool.name
            );
            if let Some(output) = &tool.output_schema {
                assert_eq!(output["type"], "object", "{}", tool.name);
                assert!(output["required"].is_array(), "{}", tool.name);
            }
        }
    }
}
