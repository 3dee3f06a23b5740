//! Who may read and act through `mq web`, checked on every request before any handler runs:
//!
//! - **DNS rebinding.** Without a token, only a `Host` that is an IP address or `localhost` is
//!   served: a page of another site whose name was made to resolve to 127.0.0.1 sends its own
//!   name as `Host` and is refused.
//! - **Token.** With `--auth-token`, every `/api/` request needs `Authorization: Bearer
//!   <token>` (compared in constant time); the page asks for it in a login form and keeps it
//!   in the tab's `sessionStorage`. No cookie is ever set, so no other site's page can make a
//!   browser send it.
//! - **CSRF.** Every `POST` needs the header `X-Requested-By: mq-web`, which a cross-site form
//!   cannot send and a cross-site `fetch` cannot send without a CORS preflight that mq web
//!   never answers, and an `Origin` (when the browser sends one) naming the `Host` itself;
//!   `Sec-Fetch-Site: cross-site` is refused outright.
//! - **Read-only.** With `--read-only` every `POST` is refused (403).

use std::{net::IpAddr, sync::Arc};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, Method, Request},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use super::{app::App, error::ApiError};

/// The header every action needs (see the module docs).
pub(crate) const ACTION_HEADER: &str = "x-requested-by";
/// Its value.
pub(crate) const ACTION_VALUE: &str = "mq-web";

/// The middleware: refuses what the module docs say, then adds the security headers of every
/// answer (a strict Content-Security-Policy, no framing, no sniffing, no referrer, no caching
/// of API answers).
pub(crate) async fn guard(State(app): State<Arc<App>>, req: Request<Body>, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    if let Err(e) = check(&app, req.method(), req.headers(), api) {
        return with_headers(e.into_response(), api);
    }
    with_headers(next.run(req).await, api)
}

fn check(app: &App, method: &Method, headers: &HeaderMap, api: bool) -> Result<(), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if app.token.is_none() && !is_local_host(host) {
        return Err(ApiError::forbidden(format!(
            "Host {host:?} refused: without --auth-token mq web answers only to an IP address \
             or localhost (a defence against DNS rebinding)"
        )));
    }
    if api {
        if let Some(token) = &app.token {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "a valid token is needed: Authorization: Bearer <token> (the page asks for it)",
                ));
            }
        }
    }
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    if method != Method::POST {
        return Err(ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} is not allowed: reads are GET, actions POST"),
        ));
    }
    if app.read_only {
        return Err(ApiError::forbidden(
            "mq web runs with --read-only: actions are disabled",
        ));
    }
    if headers.get(ACTION_HEADER).and_then(|h| h.to_str().ok()) != Some(ACTION_VALUE) {
        return Err(ApiError::forbidden(format!(
            "actions need the header X-Requested-By: {ACTION_VALUE} (a defence against \
             cross-site requests)"
        )));
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Err(ApiError::forbidden("cross-site request refused"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let own = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if own != Some(host) {
            return Err(ApiError::forbidden(format!(
                "Origin {origin:?} is not this server ({host:?}): cross-site request refused"
            )));
        }
    }
    Ok(())
}

/// `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`, `10.0.0.5` and the like: an IP address
/// or `localhost`, with or without a port.
fn is_local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(ip, _)| ip),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

fn with_headers(mut response: Response, api: bool) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_and_localhost_are_local_hosts() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:1",
            "LOCALHOST",
            "[::1]:80",
            "10.1.2.3",
        ] {
            assert!(is_local_host(ok), "{ok}");
        }
        for no in [
            "evil.example:8080",
            "127.0.0.1.nip.io",
            "",
            "[::1",
            "localhost.evil",
        ] {
            assert!(!is_local_host(no), "{no}");
        }
    }
}
