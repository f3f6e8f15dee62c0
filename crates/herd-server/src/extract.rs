//! Request bodies: read once with a size limit, gunzipped when the client says so, parsed into wire types
//! with errors that name the offending field.

use crate::error::{ApiError, OsqueryError};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use std::io::Read;

/// Largest request body accepted from admins and tools.
pub const REST_BODY_LIMIT: usize = 4 << 20;
/// Largest (compressed) body accepted from agents: osquery batches result logs.
pub const OSQUERY_BODY_LIMIT: usize = 32 << 20;
/// Largest body after gunzip, so a small bomb cannot fill memory.
pub const INFLATED_LIMIT: usize = 128 << 20;

#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Unreadable(String),
    Malformed(String),
    Invalid { field: String, reason: String },
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        if std::error::Error::source(&err).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || err.to_string().contains("length limit")
        {
            BodyError::TooLarge
        } else {
            BodyError::Unreadable(format!("cannot read request body: {err}"))
        }
    })
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(INFLATED_LIMIT as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|err| BodyError::Unreadable(format!("body is not valid gzip: {err}")))?;
    if out.len() > INFLATED_LIMIT {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

/// Parses JSON, telling syntax errors (400) from shape errors (422, with the path of the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Malformed("request body is empty, expected json".into()));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => BodyError::Invalid {
                field: if path == "." { "base".into() } else { path },
                reason: strip_position(&inner.to_string()),
            },
            _ => BodyError::Malformed(format!("malformed json: {inner}")),
        }
    })?;
    de.end().map_err(|err| BodyError::Malformed(format!("malformed json: {err}")))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 17" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

async fn body_json<T: DeserializeOwned>(req: Request, limit: usize) -> Result<T, BodyError> {
    let gzipped = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let bytes = read_body(req.into_body(), limit).await?;
    let bytes = if gzipped { gunzip(&bytes)? } else { bytes.to_vec() };
    // Every herd endpoint takes a JSON object; serde would otherwise read `[]` as a struct of defaults.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(BodyError::Malformed("request body must be a json object".into()));
    }
    parse_json(&bytes)
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge => ApiError::TooLarge,
            BodyError::Unreadable(reason) | BodyError::Malformed(reason) => ApiError::BadRequest(reason),
            BodyError::Invalid { field, reason } => ApiError::Validation { field, reason },
        }
    }
}

impl From<BodyError> for OsqueryError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge => OsqueryError::TooLarge,
            BodyError::Unreadable(reason) | BodyError::Malformed(reason) => OsqueryError::BadRequest(reason),
            BodyError::Invalid { field, reason } => OsqueryError::BadRequest(format!("{field}: {reason}")),
        }
    }
}

/// `team_id` as Fleet's clients send it (query parameter or form field): absent, empty or 0 mean no team.
pub fn team_id_value(value: Option<&str>) -> Result<Option<i64>, ApiError> {
    match value.map(str::trim) {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => {
            v.parse().map(Some).map_err(|_| ApiError::invalid("team_id", format!("must be an integer, not {v:?}")))
        }
    }
}

/// A file uploaded the way Fleet's UI uploads scripts and profiles: multipart, the file under `file_field`,
/// and an optional `team_id`. Any other field is refused by name.
pub struct TeamUpload {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub team_id: Option<i64>,
}

pub async fn team_upload(mut form: axum::extract::Multipart, file_field: &str) -> Result<TeamUpload, ApiError> {
    let unreadable = |e: axum::extract::multipart::MultipartError| ApiError::BadRequest(format!("multipart: {e}"));
    let mut file = None;
    let mut team_id = None;
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some(name) if name == file_field => {
                let file_name = field.file_name().unwrap_or("").to_string();
                file = Some((file_name, field.bytes().await.map_err(unreadable)?.to_vec()));
            }
            Some("team_id") => team_id = team_id_value(Some(&field.text().await.map_err(unreadable)?))?,
            Some(other) => return Err(ApiError::invalid(other.to_string(), "unknown form field")),
            None => {}
        }
    }
    let (file_name, bytes) =
        file.ok_or_else(|| ApiError::invalid(file_field, format!("a `{file_field}` file field is required")))?;
    Ok(TeamUpload { file_name, bytes, team_id })
}

/// A numeric id from the path (`/hosts/{id}`), refused with 422 naming `id` when it is not a number.
pub struct PathId(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        raw.parse::<i64>().map(PathId).map_err(|_| ApiError::invalid("id", format!("must be an integer, not {raw:?}")))
    }
}

/// A JSON body of the REST API.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiJson(body_json(req, REST_BODY_LIMIT).await?))
    }
}

/// A JSON body of the osquery TLS API (gzip allowed), with the node key from the body or, failing that,
/// from `Authorization: NodeKey <key>` (osquery ≥ 5.23).
pub struct OsqueryJson<T> {
    pub body: T,
    pub header_node_key: Option<String>,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OsqueryJson<T> {
    type Rejection = OsqueryError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let header_node_key = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("NodeKey "))
            .map(|k| k.trim().to_string());
        Ok(OsqueryJson { body: body_json(req, OSQUERY_BODY_LIMIT).await?, header_node_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        items: Vec<Item>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        id: i64,
    }

    #[test]
    fn errors_name_the_field() {
        match parse_json::<Sample>(br#"{"name":"x","items":[{"id":1},{"id":"two"}]}"#) {
            Err(BodyError::Invalid { field, reason }) => {
                assert_eq!(field, "items[1].id");
                assert!(reason.contains("invalid type"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_json::<Sample>(b"{\"name\":"), Err(BodyError::Malformed(_))));
        assert!(matches!(parse_json::<Sample>(b""), Err(BodyError::Malformed(_))));
        assert!(matches!(parse_json::<Sample>(br#"{"name":"x","items":[]} trailing"#), Err(BodyError::Malformed(_))));
        match parse_json::<Sample>(br#"{"items":[]}"#) {
            Err(BodyError::Invalid { field, reason }) => {
                assert_eq!((field.as_str(), reason.as_str()), ("base", "missing field `name`"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gzip_bombs_are_refused() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(INFLATED_LIMIT >> 20) + 1 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < OSQUERY_BODY_LIMIT);
        assert!(matches!(gunzip(&bomb), Err(BodyError::TooLarge)));
        assert!(matches!(gunzip(b"not gzip"), Err(BodyError::Unreadable(_))));
    }
}
