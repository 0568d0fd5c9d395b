//! A chat-completions request as clients send it, read once into a typed `Completion`: the
//! fields tandem honours are checked for range, the ones it cannot honour (tools, images,
//! n > 1, logprobs ...) are refused by name, and the rest are ignored as OpenAI ignores them.
//! No routing and no IO here.

use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use crate::chat::{Message, Role};

/// A request, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub model: String,
    /// Everything before the last user message.
    pub history: Vec<Message>,
    /// The last user message: what the router scores and the tier answers.
    pub prompt: String,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with usage and no choices.
    pub include_usage: bool,
    pub max_tokens: Option<usize>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    /// The caller's end-user id; in the debug log only, never sent on.
    pub user: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    model: String,
    messages: Vec<RawMessage>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Option<Stop>,
    seed: Option<i64>,
    user: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawMessage {
    role: String,
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Value>),
}

/// Fields that change what the answer is; tandem cannot honour them, so it says so.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("tools", "tandem does not call tools"),
    ("tool_choice", "tandem does not call tools"),
    ("functions", "tandem does not call functions"),
    ("function_call", "tandem does not call functions"),
    ("audio", "tandem answers in text only"),
    ("prediction", "predicted outputs are not supported"),
    ("web_search_options", "tandem does not search the web"),
    ("top_logprobs", "log probabilities are not returned"),
];

/// Parses and checks a request body.
pub fn parse(body: &[u8]) -> Result<Completion, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            format!("the body is not valid JSON ({e}); send a chat completions request"),
            None,
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(ApiError::invalid("the body must be a JSON object", None));
    };
    let unsupported = |param: &str, why: &str| ApiError::Unsupported {
        param: param.into(),
        why: why.into(),
    };
    // A field sent as null is absent, as OpenAI reads it.
    let set = |k: &str| obj.get(k).filter(|v| !v.is_null());
    for (field, why) in UNSUPPORTED {
        if set(field).is_some() {
            return Err(unsupported(field, why));
        }
    }
    if set("logprobs").is_some_and(|v| v != &Value::Bool(false)) {
        return Err(unsupported(
            "logprobs",
            "log probabilities are not returned",
        ));
    }
    if set("n").is_some_and(|v| v.as_u64() != Some(1)) {
        return Err(unsupported("n", "tandem returns one choice per request"));
    }
    if let Some(f) = set("response_format")
        && f.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(unsupported(
            "response_format",
            "only {\"type\": \"text\"} is supported",
        ));
    }
    if let Some(m) = set("modalities")
        && m.as_array()
            .is_none_or(|a| a.iter().any(|x| x.as_str() != Some("text")))
    {
        return Err(unsupported("modalities", "tandem answers in text only"));
    }
    let raw: Raw = serde_json::from_value(v)
        .map_err(|e| ApiError::invalid(format!("not a chat completions request: {e}"), None))?;
    build(raw)
}

fn build(raw: Raw) -> Result<Completion, ApiError> {
    if raw.model.trim().is_empty() {
        return Err(ApiError::invalid("model must not be empty", Some("model")));
    }
    let mut messages = Vec::with_capacity(raw.messages.len());
    for (i, m) in raw.messages.into_iter().enumerate() {
        messages.push(message(i, m)?);
    }
    let Some(last) = messages.pop() else {
        return Err(ApiError::invalid(
            "messages must not be empty",
            Some("messages"),
        ));
    };
    if last.role != Role::User {
        return Err(ApiError::invalid(
            "the last message must be the user's: tandem answers it",
            Some("messages"),
        ));
    }
    let max_tokens = raw.max_completion_tokens.or(raw.max_tokens);
    if max_tokens == Some(0) {
        return Err(ApiError::invalid(
            "max_tokens must be at least 1",
            Some("max_tokens"),
        ));
    }
    if let Some(t) = raw.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(ApiError::invalid(
            "temperature must be from 0 to 2",
            Some("temperature"),
        ));
    }
    if let Some(p) = raw.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(ApiError::invalid(
            "top_p must be above 0 and at most 1",
            Some("top_p"),
        ));
    }
    let stop = match raw.stop {
        None => vec![],
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if stop.len() > 4 || stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "stop takes up to 4 non-empty strings",
            Some("stop"),
        ));
    }
    let stream = raw.stream.unwrap_or(false);
    Ok(Completion {
        model: raw.model,
        history: messages,
        prompt: last.content,
        stream,
        include_usage: stream
            && raw
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
        max_tokens: max_tokens.map(|n| n.min(u32::MAX as u64) as usize),
        temperature: raw.temperature,
        top_p: raw.top_p,
        stop,
        seed: raw.seed,
        user: raw.user,
    })
}

fn message(i: usize, m: RawMessage) -> Result<Message, ApiError> {
    let role = match m.role.as_str() {
        // `developer` is the newer name OpenAI gives system instructions.
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" | "function" => {
            return Err(ApiError::Unsupported {
                param: format!("messages[{i}].role"),
                why: "tandem does not call tools".into(),
            });
        }
        other => {
            return Err(ApiError::invalid(
                format!("unknown role {other:?}; use system, user or assistant"),
                Some(&format!("messages[{i}].role")),
            ));
        }
    };
    let content = match m.content {
        None => {
            return Err(ApiError::invalid(
                "content must be text",
                Some(&format!("messages[{i}].content")),
            ));
        }
        Some(Content::Text(s)) => s,
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                let param = format!("messages[{i}].content[{j}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = p.get("text").and_then(Value::as_str).ok_or_else(|| {
                            ApiError::invalid("a text part needs \"text\"", Some(&param))
                        })?;
                        text.push_str(t);
                    }
                    Some(kind) => {
                        return Err(ApiError::Unsupported {
                            param: format!("{param}.type"),
                            why: format!("{kind} parts are not supported; tandem reads text"),
                        });
                    }
                    None => {
                        return Err(ApiError::invalid(
                            "a content part needs a type",
                            Some(&param),
                        ));
                    }
                }
            }
            text
        }
    };
    Ok(Message::new(role, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Completion, ApiError> {
        parse(s.as_bytes())
    }

    #[test]
    fn a_full_request_is_read() {
        let c = p(r#"{"model":"tandem","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"developer","content":"be brief"},
                        {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
            "max_completion_tokens":8,"max_tokens":99,"temperature":0,"top_p":0.5,"stop":"\n","seed":7,"user":"u",
            "n":1,"logprobs":false,"tools":null,"presence_penalty":0}"#)
        .unwrap();
        assert_eq!(c.history, vec![Message::system("be brief")]);
        assert_eq!(c.prompt, "hi there");
        assert!(c.stream && c.include_usage);
        assert_eq!(c.max_tokens, Some(8));
        assert_eq!(c.stop, vec!["\n".to_string()]);
        assert_eq!((c.seed, c.user.as_deref()), (Some(7), Some("u")));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        let param = |s: &str| match p(s) {
            Err(ApiError::Unsupported { param, .. }) => param,
            other => panic!("{other:?}"),
        };
        let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
        assert_eq!(
            param(&format!(r#"{{"model":"m",{msgs},"tools":[]}}"#)),
            "tools"
        );
        assert_eq!(param(&format!(r#"{{"model":"m",{msgs},"n":2}}"#)), "n");
        assert_eq!(
            param(&format!(r#"{{"model":"m",{msgs},"logprobs":true}}"#)),
            "logprobs"
        );
        let image = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#;
        assert_eq!(param(image), "messages[0].content[0].type");
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        assert!(matches!(p("{not json"), Err(ApiError::Invalid { .. })));
        assert!(matches!(
            p(r#"{"model":"m"}"#),
            Err(ApiError::Invalid { .. })
        ));
        let last_assistant = r#"{"model":"m","messages":[{"role":"assistant","content":"x"}]}"#;
        assert!(matches!(p(last_assistant), Err(ApiError::Invalid { .. })));
        let hot = r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#;
        assert!(
            matches!(p(hot), Err(ApiError::Invalid { param: Some(t), .. }) if t == "temperature")
        );
    }
}
