//! Tool arguments are checked against the very JSON Schema each tool advertises, compiled once at
//! start-up, before they are deserialized: every advertised range, length, pattern and enum holds
//! exactly as advertised. A violation names the argument and the rule; the offending value is
//! never echoed (it may be a password).

use std::collections::HashMap;

use jsonschema::error::ValidationErrorKind;
use rmcp::model::Tool;
use serde_json::Value;

use super::errors::{Code, ToolError};

/// The pattern of session ids in schemas; a violation of it answers INVALID_SESSION_ID.
pub const SESSION_ID_PATTERN: &str = "^[0-9a-f]{64}$";

pub struct ArgumentValidators {
    by_tool: HashMap<String, jsonschema::Validator>,
}

impl ArgumentValidators {
    /// Compiles every tool's input schema; a schema that does not compile is a programming error
    /// reported at start-up.
    pub fn compile(tools: &[Tool]) -> Result<Self, String> {
        let mut by_tool = HashMap::new();
        for tool in tools {
            let schema = Value::Object(tool.input_schema.as_ref().clone());
            let validator = jsonschema::validator_for(&schema).map_err(|e| {
                format!("the input schema of `{}` does not compile: {e}", tool.name)
            })?;
            by_tool.insert(tool.name.to_string(), validator);
        }
        Ok(Self { by_tool })
    }

    /// Checks `arguments` of `tool`. Unknown tools pass (the router answers them).
    pub fn check(&self, tool: &str, arguments: &Value) -> Result<(), ToolError> {
        let Some(validator) = self.by_tool.get(tool) else {
            return Ok(());
        };
        let mut problems = Vec::new();
        let mut code = Code::InvalidArgument;
        for error in validator.iter_errors(arguments) {
            let field = error
                .instance_path()
                .as_str()
                .trim_start_matches('/')
                .replace('/', ".");
            let problem = match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    format!("unknown argument(s) {}", quote_all(unexpected))
                }
                ValidationErrorKind::Required { property } => {
                    format!(
                        "missing required argument `{}`",
                        property.as_str().unwrap_or_default()
                    )
                }
                ValidationErrorKind::Pattern { pattern } => {
                    if pattern == SESSION_ID_PATTERN {
                        code = Code::InvalidSessionId;
                        format!("`{field}` is not a session id (64 lowercase hex characters)")
                    } else {
                        format!("`{field}` does not match the pattern {pattern}")
                    }
                }
                _ if field.is_empty() => format!("{}", error.masked_with("the arguments")),
                _ => format!("`{field}`: {}", error.masked_with("the value")),
            };
            problems.push(problem);
        }
        if problems.is_empty() {
            return Ok(());
        }
        problems.truncate(5);
        Err(ToolError::new(
            code,
            format!("invalid arguments for {tool}: {}", problems.join("; ")),
        ))
    }
}

fn quote_all(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
