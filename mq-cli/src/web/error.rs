//! [`ApiError`]: every refusal and failure of the web API, answered as JSON
//! `{"error": "..."}` with a 4xx status for bad requests and 502 for Redis failing, never with
//! a secret (the Redis URL's password is hidden as in the CLI's errors).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

/// A refused or failed API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// One line for the operator.
    pub(crate) message: String,
}

impl ApiError {
    /// 400 Bad Request.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 403 Forbidden.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// Any status.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// An error of mq-core: bad input (a queue name, cursor, id, page size) is 400, anything
    /// else (Redis unreachable or failing) 502; the text is the CLI's one line, with the
    /// password of `url` hidden.
    pub(crate) fn core(e: &mq_core::Error, url: &str) -> Self {
        let status = match e {
            mq_core::Error::Config(_)
            | mq_core::Error::Decode(_)
            | mq_core::Error::Encode { .. } => StatusCode::BAD_REQUEST,
            mq_core::Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, crate::error::one_line(e, url))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_4xx_and_redis_failures_5xx_without_the_password() {
        let url = "redis://:hunter2@127.0.0.1:1/";
        let e = ApiError::core(&mq_core::Error::Config("bad cursor \"x\"".into()), url);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = ApiError::core(&mq_core::Error::Config(format!("cannot reach {url}")), url);
        assert!(!e.message.contains("hunter2"), "{}", e.message);
    }
}
