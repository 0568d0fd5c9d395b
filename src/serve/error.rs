//! Every way a request to `tandem serve` can fail, each with its HTTP status and the JSON shape
//! OpenAI's clients parse (`{"error": {"message", "type", "param", "code"}}`), so an SDK raises
//! its usual exception with tandem's words in it.

use serde_json::json;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the shape of a chat request.
    #[error("{message}")]
    Invalid {
        message: String,
        param: Option<String>,
    },
    /// A field tandem cannot honour; naming it beats silently ignoring it.
    #[error("{param} is not supported by tandem serve: {why}")]
    Unsupported { param: String, why: String },
    #[error("{0}")]
    UnknownModel(String),
    /// Not sent to the cloud (privacy or budget); the message says why and how to lift it.
    #[error("{0}")]
    Refused(String),
    #[error(
        "the local model is busy: {waiting} requests are already waiting; try again in {retry_after_secs} s"
    )]
    Busy {
        waiting: usize,
        retry_after_secs: u64,
    },
    /// No tier can answer (the local model is loading and the cloud is offline, ...).
    #[error("{0}")]
    NoTier(String),
    /// The tier failed before it said anything.
    #[error("{0}")]
    Model(String),
    #[error(
        "missing or wrong bearer token: send the token given to tandem serve as `Authorization: Bearer TOKEN`"
    )]
    Unauthorized,
    #[error("the request body is larger than {limit} bytes (serve.max_body_bytes)")]
    TooLarge { limit: usize },
    #[error(
        "no route for {method} {path}; tandem serve answers POST /v1/chat/completions, GET /v1/models and GET /health"
    )]
    NotFound { method: String, path: String },
    #[error("tandem serve is shutting down")]
    ShuttingDown,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> ApiError {
        ApiError::Invalid {
            message: message.into(),
            param: param.map(str::to_string),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Invalid { .. } | ApiError::Unsupported { .. } | ApiError::Refused(_) => 400,
            ApiError::Unauthorized => 401,
            ApiError::UnknownModel(_) | ApiError::NotFound { .. } => 404,
            ApiError::TooLarge { .. } => 413,
            ApiError::Busy { .. } => 429,
            ApiError::Model(_) => 502,
            ApiError::NoTier(_) | ApiError::ShuttingDown => 503,
        }
    }

    /// OpenAI's `type` and `code` for this error.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Invalid { .. } => ("invalid_request_error", "invalid_request"),
            ApiError::Unsupported { .. } => ("invalid_request_error", "unsupported_parameter"),
            ApiError::UnknownModel(_) => ("invalid_request_error", "model_not_found"),
            ApiError::Refused(_) => ("invalid_request_error", "tandem_refused"),
            ApiError::Busy { .. } => ("rate_limit_error", "local_queue_full"),
            ApiError::NoTier(_) => ("server_error", "no_tier_available"),
            ApiError::Model(_) => ("server_error", "upstream_error"),
            ApiError::Unauthorized => ("invalid_request_error", "invalid_api_key"),
            ApiError::TooLarge { .. } => ("invalid_request_error", "request_too_large"),
            ApiError::NotFound { .. } => ("invalid_request_error", "not_found"),
            ApiError::ShuttingDown => ("server_error", "shutting_down"),
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::Invalid { param, .. } => param.as_deref(),
            ApiError::Unsupported { param, .. } => Some(param),
            ApiError::UnknownModel(_) => Some("model"),
            _ => None,
        }
    }

    /// Seconds a client should wait before trying again, for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Busy {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The body every OpenAI client understands.
    pub fn body(&self) -> serde_json::Value {
        let (kind, code) = self.kind();
        json!({ "error": {
            "message": crate::sanitize::one_line(&self.to_string()),
            "type": kind,
            "param": self.param(),
            "code": code,
        }})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_openai_shape_and_status() {
        let e = ApiError::Unsupported {
            param: "tools".into(),
            why: "tandem does not call tools".into(),
        };
        assert_eq!(e.status(), 400);
        let b = e.body();
        assert_eq!(b["error"]["param"], "tools");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(b["error"]["message"].as_str().unwrap().starts_with("tools"));
        let busy = ApiError::Busy {
            waiting: 3,
            retry_after_secs: 4,
        };
        assert_eq!((busy.status(), busy.retry_after()), (429, Some(4)));
        assert_eq!(ApiError::TooLarge { limit: 1 }.status(), 413);
    }
}
