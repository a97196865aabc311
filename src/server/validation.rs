//! Tool arguments are checked against the JSON Schema schemars generates for each tool, compiled
//! once at start-up, before they are deserialized. tools/list shows a summary of that schema (see
//! `listing`): every range, enum and required name it shows holds exactly
//! as shown, and the rules it leaves out to stay small (string lengths, the id pattern, unknown
//! argument names) are enforced here all the same, each named in the error. A violation names the
//! argument and the rule; the offending value is never echoed (it may be a password), and unknown
//! argument names only in part.
//!
//! One rule is stricter than the schema's words: JSON Schema counts `60.0` and `6e1` as
//! integers, serde's integer types do not, so an integer argument must be written as one.
//! Whatever passes here deserializes into the tool's argument struct.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind;
use rmcp::model::Tool;
use serde_json::Value;

use super::errors::{Code, ToolError};

/// The pattern of session ids in schemas; a violation of it answers INVALID_SESSION_ID.
pub const SESSION_ID_PATTERN: &str = "^[0-9a-f]{64}$";

pub struct ArgumentValidators {
    by_tool: HashMap<String, jsonschema::Validator>,
}

/// The validators, compiled on a thread of their own while the server answers `initialize`:
/// compiling (and checking each schema against the draft 2020-12 meta-schema) is about a fifth
/// of the server's start-up. A call that comes before they are ready waits for them.
#[derive(Clone)]
pub struct PendingValidators {
    slot: Arc<OnceLock<Result<ArgumentValidators, String>>>,
}

impl PendingValidators {
    /// Starts compiling the input schemas of `tools`.
    pub fn start(tools: Vec<Tool>) -> Self {
        let slot = Arc::new(OnceLock::new());
        let tools = Arc::new(tools);
        let (filler, list) = (slot.clone(), tools.clone());
        if let Err(e) = std::thread::Builder::new()
            .name("schema-compile".into())
            .spawn(move || {
                let _ = filler.set(ArgumentValidators::compile(&list));
            })
        {
            tracing::warn!("compiling the argument schemas in the foreground: {e}");
            let _ = slot.set(ArgumentValidators::compile(&tools));
        }
        Self { slot }
    }

    /// The compiled validators, once ready; `Err` names a schema that did not compile (a
    /// programming error, which fails every call rather than skipping validation).
    pub async fn ready(&self) -> Result<&ArgumentValidators, String> {
        if self.slot.get().is_none() {
            let slot = self.slot.clone();
            // Waiting blocks: it happens on the blocking pool, at most once per start.
            let _ = tokio::task::spawn_blocking(move || {
                slot.wait();
            })
            .await;
        }
        match self.slot.get() {
            Some(Ok(validators)) => Ok(validators),
            Some(Err(e)) => Err(e.clone()),
            None => Err("the argument schemas were not compiled".into()),
        }
    }
}

impl ArgumentValidators {
    /// Compiles every tool's input schema; a schema that does not compile is a programming error
    /// reported at start-up.
    pub fn compile(tools: &[Tool]) -> Result<Self, String> {
        let mut by_tool = HashMap::new();
        for tool in tools {
            let mut schema = Value::Object(tool.input_schema.as_ref().clone());
            mark_integers(&mut schema);
            let validator = jsonschema::options()
                .with_keyword(INTEGER_LITERAL, |_, _, _| Ok(Box::new(IntegerLiteral)))
                .build(&schema)
                .map_err(|e| {
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
                        format!("`{field}` is not an id: ids are 64 lowercase hex characters")
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

/// Names the first few unknown arguments, each cut short: the names are the caller's input, and
/// a huge one must not come back whole.
fn quote_all(names: &[String]) -> String {
    const SHOWN: usize = 5;
    const NAME_CHARS: usize = 64;
    let mut quoted: Vec<String> = names
        .iter()
        .take(SHOWN)
        .map(|name| {
            let mut short: String = name.chars().take(NAME_CHARS).collect();
            if short.len() < name.len() {
                short.push('…');
            }
            format!("`{short}`")
        })
        .collect();
    if names.len() > SHOWN {
        quoted.push(format!("and {} more", names.len() - SHOWN));
    }
    quoted.join(", ")
}

/// The keyword [`mark_integers`] adds to every integer-typed subschema.
const INTEGER_LITERAL: &str = "x-integer-literal";

/// Adds [`INTEGER_LITERAL`] beside every `"type": "integer"` (alone or in a list of types).
/// Literal values (`enum`, `const`, `default`, `examples`) are left alone.
fn mark_integers(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let integer = match map.get("type") {
                Some(Value::String(kind)) => kind == "integer",
                Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "integer"),
                _ => false,
            };
            for (key, value) in map.iter_mut() {
                if !matches!(key.as_str(), "enum" | "const" | "default" | "examples") {
                    mark_integers(value);
                }
            }
            if integer {
                map.insert(INTEGER_LITERAL.into(), Value::Bool(true));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mark_integers),
        _ => {}
    }
}

/// Refuses a number written with a fraction or an exponent where an integer is expected.
struct IntegerLiteral;

impl<'i> jsonschema::Keyword<'i> for IntegerLiteral {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            Ok(())
        } else {
            Err(ValidationError::custom(
                "the value is not written as an integer (no fraction or exponent)",
            ))
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        !matches!(instance, Value::Number(number) if number.is_f64())
    }
}

#[cfg(test)]
mod tests {
    //! Arbitrary arguments for every tool: checking never panics, never echoes a value, and
    //! whatever passes deserializes into the tool's argument struct (so the tool never fails on
    //! input its schema accepted). `PROPTEST_CASES` sets the number of cases (default 256).

    use proptest::prelude::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::super::McpSessions;
    use super::super::context_tools::{CreateContextArgs, InContext, NoArgs, Scoped};
    use super::super::page_tools::{
        EvaluateArgs, NavigateArgs, ReadArgs, ScreenshotArgs, SelectorArgs, TypeArgs, WaitArgs,
    };
    use super::super::session_tools::{
        CreateSessionArgs, ListSessionsArgs, RefreshSessionArgs, SessionArgs,
    };
    use super::*;

    /// Marks string values, so that an echo of one in an error message is seen.
    const MARK: char = '§';

    fn tools() -> Vec<Tool> {
        McpSessions::all_tools().list_all()
    }

    fn parse<T: DeserializeOwned>(arguments: &Value) -> Result<(), String> {
        serde_json::from_value::<T>(arguments.clone())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Deserializes `arguments` as the tool's handler does (rmcp's `Parameters<T>`).
    fn deserialize_for(tool: &str, arguments: &Value) -> Result<(), String> {
        match tool {
            "create-session" => parse::<CreateSessionArgs>(arguments),
            "list-sessions" => parse::<ListSessionsArgs>(arguments),
            "get-session" | "delete-session" => parse::<SessionArgs>(arguments),
            "refresh-session" => parse::<RefreshSessionArgs>(arguments),
            "create-browser-context" => parse::<Scoped<CreateContextArgs>>(arguments),
            "list-browser-contexts" => parse::<Scoped<NoArgs>>(arguments),
            "close-browser-context" => parse::<Scoped<InContext<NoArgs>>>(arguments),
            "browser-navigate" => parse::<Scoped<InContext<NavigateArgs>>>(arguments),
            "browser-screenshot" => parse::<Scoped<InContext<ScreenshotArgs>>>(arguments),
            "browser-read" => parse::<Scoped<InContext<ReadArgs>>>(arguments),
            "browser-click" => parse::<Scoped<InContext<SelectorArgs>>>(arguments),
            "browser-type" => parse::<Scoped<InContext<TypeArgs>>>(arguments),
            "browser-wait-for" => parse::<Scoped<InContext<WaitArgs>>>(arguments),
            "browser-evaluate" => parse::<Scoped<InContext<EvaluateArgs>>>(arguments),
            other => panic!("no argument struct known for `{other}`: add it here"),
        }
    }

    /// Every argument name of every tool (nested ones too), and one no tool takes.
    fn names() -> Vec<String> {
        fn collect(schema: &Value, names: &mut Vec<String>) {
            match schema {
                Value::Object(map) => {
                    if let Some(Value::Object(properties)) = map.get("properties") {
                        names.extend(properties.keys().cloned());
                    }
                    map.values().for_each(|v| collect(v, names));
                }
                Value::Array(items) => items.iter().for_each(|v| collect(v, names)),
                _ => {}
            }
        }
        let mut names = vec!["extra".to_owned()];
        for tool in tools() {
            collect(
                &Value::Object(tool.input_schema.as_ref().clone()),
                &mut names,
            );
        }
        names.sort();
        names.dedup();
        names
    }

    /// Values near what the tools take: ids, limits' edges, enum words, integral floats.
    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            prop::sample::select(vec![
                -1i64,
                0,
                1,
                99,
                100,
                199,
                200,
                201,
                2160,
                3840,
                3841,
                86_400,
                120_000,
                120_001,
                200_000,
                200_001,
                4_294_967_295,
                4_294_967_296,
            ])
            .prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            (-5i64..300_000).prop_map(|n| Value::from(n as f64)),
            "[0-9a-f]{64}".prop_map(Value::String),
            "§[a-zA-Z0-9:/. ]{0,16}".prop_map(Value::String),
            prop::sample::select(vec!["png", "jpeg", "text", "html", "PNG", ""])
                .prop_map(|s| Value::String(s.to_owned())),
            (0usize..5000).prop_map(|n| Value::String(format!("{MARK}{}", "a".repeat(n)))),
            any::<String>().prop_map(Value::String),
        ]
    }

    fn object(
        names: Vec<String>,
        values: impl Strategy<Value = Value>,
    ) -> impl Strategy<Value = Value> {
        prop::collection::btree_map(prop::sample::select(names), values, 0..6)
            .prop_map(|map| Value::Object(map.into_iter().collect()))
    }

    /// An arguments object: known names (and one unknown) with leaves, lists or objects of them.
    fn arguments() -> impl Strategy<Value = Value> {
        let names = names();
        let nested_names = names.clone();
        let values = leaf().prop_recursive(2, 12, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                object(nested_names.clone(), inner),
            ]
        });
        object(names, values)
    }

    fn integer_like() -> BoxedStrategy<Value> {
        prop_oneof![
            prop::sample::select(vec![
                -1i64, 0, 1, 99, 100, 199, 200, 201, 2160, 2161, 3840, 3841, 86_400, 120_000,
                120_001, 200_000, 200_001,
            ])
            .prop_map(Value::from),
            (0u64..300_000).prop_map(Value::from),
            (0i64..300_000).prop_map(|n| Value::from(n as f64)),
        ]
        .boxed()
    }

    fn text_like() -> BoxedStrategy<Value> {
        prop_oneof![
            "§[a-z0-9:/. ]{0,16}".prop_map(Value::String),
            (0usize..5000).prop_map(|n| Value::String(format!("{MARK}{}", "a".repeat(n)))),
        ]
        .boxed()
    }

    /// An object with each of `fields`, each present with the given probability.
    fn fields(fields: Vec<(String, f64, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
        fields
            .into_iter()
            .map(|(name, present, value)| {
                prop::option::weighted(present, value).prop_map(move |v| (name.clone(), v))
            })
            .collect::<Vec<_>>()
            .prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .filter_map(|(name, value)| Some((name, value?)))
                        .collect(),
                )
            })
            .boxed()
    }

    /// Mostly a value of the kind the argument `name` takes, sometimes anything.
    fn value_for(name: &str) -> BoxedStrategy<Value> {
        let likely = match name {
            "sessionId" | "contextId" => "[0-9a-f]{64}".prop_map(Value::String).boxed(),
            "duration" | "timeoutMs" | "maxChars" | "width" | "height" => integer_like(),
            "headless" | "fullPage" | "submit" => any::<bool>().prop_map(Value::Bool).boxed(),
            "format" => prop::sample::select(vec!["png", "jpeg", "gif"])
                .prop_map(|s| Value::String(s.to_owned()))
                .boxed(),
            "mode" => prop::sample::select(vec!["text", "html", "TEXT"])
                .prop_map(|s| Value::String(s.to_owned()))
                .boxed(),
            "viewport" => fields(vec![
                ("width".to_owned(), 0.9, integer_like()),
                ("height".to_owned(), 0.9, integer_like()),
            ]),
            "options" => fields(vec![
                ("headless".to_owned(), 0.5, value_for("headless")),
                ("viewport".to_owned(), 0.7, value_for("viewport")),
            ]),
            _ => text_like(),
        };
        prop_oneof![6 => likely, 1 => leaf()].boxed()
    }

    /// Arguments shaped for `tool`: its required arguments mostly there, its optional ones half
    /// the time, now and then one it does not take.
    fn arguments_for(tool: &Tool) -> BoxedStrategy<Value> {
        let schema = tool.input_schema.as_ref();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut entries: Vec<(String, f64, BoxedStrategy<Value>)> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| {
                properties
                    .keys()
                    .map(|name| {
                        let present = if required.contains(&name.as_str()) {
                            0.95
                        } else {
                            0.5
                        };
                        (name.clone(), present, value_for(name))
                    })
                    .collect()
            })
            .unwrap_or_default();
        entries.push(("extra".to_owned(), 0.05, leaf().boxed()));
        fields(entries)
    }

    /// Checks `arguments` for `tool`: accepted ones deserialize, refusals echo no value. Returns
    /// whether they were accepted.
    fn check_one(
        validators: &ArgumentValidators,
        tool: &str,
        arguments: &Value,
    ) -> Result<bool, TestCaseError> {
        match validators.check(tool, arguments) {
            Ok(()) => {
                let parsed = deserialize_for(tool, arguments);
                prop_assert!(
                    parsed.is_ok(),
                    "{} accepted {} but it does not deserialize: {:?}",
                    tool,
                    arguments,
                    parsed
                );
                Ok(true)
            }
            Err(e) => {
                prop_assert!(
                    !e.message.contains(MARK),
                    "{}: the refusal echoes a value: {}",
                    tool,
                    e.message
                );
                Ok(false)
            }
        }
    }

    proptest! {
        #[test]
        fn accepted_arguments_deserialize_and_refusals_never_echo_values(
            shaped in tools().iter().map(arguments_for).collect::<Vec<_>>(),
            anything in arguments(),
        ) {
            let tools = tools();
            let validators = ArgumentValidators::compile(&tools).unwrap();
            for (tool, shaped) in tools.iter().zip(&shaped) {
                check_one(&validators, &tool.name, shaped)?;
                check_one(&validators, &tool.name, &anything)?;
            }
        }
    }

    /// The generated arguments reach the deserializer: most tools accept some of them.
    #[test]
    fn shaped_arguments_are_often_accepted() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let tools = tools();
        let validators = ArgumentValidators::compile(&tools).unwrap();
        let mut runner = TestRunner::deterministic();
        for tool in &tools {
            let strategy = arguments_for(tool);
            let accepted = (0..200)
                .filter(|_| {
                    let arguments = strategy.new_tree(&mut runner).unwrap().current();
                    check_one(&validators, &tool.name, &arguments).unwrap()
                })
                .count();
            assert!(
                accepted >= 10,
                "{}: only {accepted} of 200 accepted",
                tool.name
            );
        }
    }

    #[test]
    fn integers_written_as_floats_are_refused_by_name() {
        let validators = ArgumentValidators::compile(&tools()).unwrap();
        for duration in [json!(60.0), json!(6e1)] {
            let arguments = json!({"username": "demo", "password": "pw", "duration": duration});
            let refused = validators.check("create-session", &arguments).unwrap_err();
            assert!(
                refused.message.contains("`duration`"),
                "{}",
                refused.message
            );
        }
        let arguments = json!({"username": "demo", "password": "pw", "duration": 60});
        assert!(validators.check("create-session", &arguments).is_ok());
        assert!(deserialize_for("create-session", &arguments).is_ok());
    }

    #[test]
    fn unknown_argument_names_are_cut_short() {
        let validators = ArgumentValidators::compile(&tools()).unwrap();
        let long = "n".repeat(10_000);
        let mut arguments = serde_json::Map::new();
        arguments.insert(long.clone(), json!(1));
        for n in 0..20 {
            arguments.insert(format!("extra{n}"), json!(1));
        }
        let refused = validators
            .check("list-sessions", &Value::Object(arguments))
            .unwrap_err();
        assert!(refused.message.len() < 1000, "{}", refused.message);
        assert!(refused.message.contains("more"), "{}", refused.message);
    }
}
