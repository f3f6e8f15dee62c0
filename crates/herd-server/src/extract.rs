//! Request bodies: read once with a size limit, gunzipped when the client says so, parsed into wire types
//! with errors that name the offending field.

use crate::app::agent::{AgentKey, authenticate_as};
use crate::error::{ApiError, OsqueryError};
use crate::host_cache::CachedHost;
use crate::state::SharedState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::sync::{Arc, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What one request body may be: bytes as sent, bytes after gunzip, and its shape. Every body is checked
/// against all four before anything is built from it, so a small body cannot become a large tree in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Bytes on the wire (compressed or not).
    pub sent: usize,
    /// Bytes after gunzip; for an uncompressed body, `sent` and this both apply.
    pub inflated: usize,
    /// Nesting of arrays and objects.
    pub depth: u32,
    /// Array elements and object members, at every level together.
    pub values: u64,
}

/// The REST API (admins and tools): 4 MiB, also after gunzip.
pub const REST_LIMITS: BodyLimits = BodyLimits { sent: 4 << 20, inflated: 4 << 20, depth: 64, values: 1_000_000 };
/// Agent requests other than reports (enroll, config, distributed/read, scripts, profiles, deferrals): a node
/// key and a few small fields, or an enrollment's host details.
pub const AGENT_LIMITS: BodyLimits = BodyLimits { sent: 1 << 20, inflated: 1 << 20, depth: 32, values: 100_000 };
/// Agent reports (distributed/write, log): osquery batches result logs and may send large query results.
pub const REPORT_LIMITS: BodyLimits = BodyLimits { sent: 32 << 20, inflated: 32 << 20, depth: 64, values: 1_000_000 };

/// The largest body any route reads (the router's default limit, e.g. for multipart uploads of the REST API it
/// is lowered to [`REST_LIMITS`]).
pub const LARGEST_BODY: usize = REPORT_LIMITS.sent;

/// Bodies up to this size are decoded where they arrive: cheap, and the check-in hot path stays on its
/// worker. Larger or compressed ones go to the blocking pool, a few at a time ([`HEAVY_DECODES`]).
const INLINE_DECODE: usize = 64 << 10;

#[derive(Debug)]
pub enum BodyError {
    TooLarge(String),
    Unreadable(String),
    Malformed(String),
    Invalid { field: String, reason: String },
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        if std::error::Error::source(&err).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || err.to_string().contains("length limit")
        {
            BodyError::TooLarge(format!("request body is larger than {}", size(limit)))
        } else {
            BodyError::Unreadable(format!("cannot read request body: {err}"))
        }
    })
}

/// `4 MiB`, `64 KiB`, `12 bytes`.
fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Counts the shape of JSON text as it streams by, without building anything: nesting depth, and values
/// (array elements and object members — every one but the first of a container follows a comma, so commas
/// plus containers bound them from above). Strings are skipped (with `memchr`), escapes honoured.
struct ShapeCheck {
    limits: BodyLimits,
    depth: u32,
    values: u64,
    in_string: bool,
    escaped: bool,
}

impl ShapeCheck {
    fn new(limits: BodyLimits) -> Self {
        ShapeCheck { limits, depth: 0, values: 0, in_string: false, escaped: false }
    }

    fn feed(&mut self, text: &[u8]) -> Result<(), BodyError> {
        let mut at = 0;
        while at < text.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    at += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &text[at..]) {
                    None => return Ok(()),
                    Some(offset) => {
                        at += offset;
                        if text[at] == b'\\' {
                            self.escaped = true;
                        } else {
                            self.in_string = false;
                        }
                        at += 1;
                        continue;
                    }
                }
            }
            match text[at] {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.values += 1;
                    if self.depth > self.limits.depth {
                        return Err(BodyError::TooLarge(format!(
                            "request body nests deeper than {} levels",
                            self.limits.depth
                        )));
                    }
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                b',' => self.values += 1,
                _ => {}
            }
            at += 1;
        }
        if self.values > self.limits.values {
            return Err(BodyError::TooLarge(format!(
                "request body has more than {} values (array elements and object members)",
                self.limits.values
            )));
        }
        Ok(())
    }
}

/// Gunzips a body as it streams, checking the shape of what comes out and stopping as soon as a limit is
/// passed, so a bomb costs no more than the limit.
fn inflate(sent: &[u8], limits: BodyLimits) -> Result<Vec<u8>, BodyError> {
    let mut shape = ShapeCheck::new(limits);
    let mut decoder = flate2::read::GzDecoder::new(sent);
    let mut out = Vec::with_capacity((sent.len() * 4).min(limits.inflated));
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let read =
            decoder.read(&mut chunk).map_err(|err| BodyError::Unreadable(format!("body is not valid gzip: {err}")))?;
        if read == 0 {
            return Ok(out);
        }
        if out.len() + read > limits.inflated {
            return Err(BodyError::TooLarge(format!(
                "request body is larger than {} after gunzip",
                size(limits.inflated)
            )));
        }
        shape.feed(&chunk[..read])?;
        out.extend_from_slice(&chunk[..read]);
    }
}

/// Parses JSON, telling syntax errors (400) from shape errors (422, with the path of the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Malformed("request body is empty, expected json".into()));
    }
    // Every herd endpoint takes a JSON object; serde would otherwise read `[]` as a struct of defaults.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(BodyError::Malformed("request body must be a json object".into()));
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

/// Decodes of large or compressed bodies run on the blocking pool, at most this many at once (each may hold
/// up to its limits in memory), so they can neither stall the async workers nor add up without bound.
fn heavy_decodes() -> Arc<Semaphore> {
    static HEAVY_DECODES: OnceLock<Arc<Semaphore>> = OnceLock::new();
    HEAVY_DECODES
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
            Arc::new(Semaphore::new(cores.clamp(2, 8)))
        })
        .clone()
}

/// A body read within its `sent` limit, not yet inflated or parsed.
pub struct RawBody {
    sent: Bytes,
    gzipped: bool,
    limits: BodyLimits,
}

impl RawBody {
    /// Reads the body (never more than `limits.sent` bytes).
    pub async fn read(req: Request, limits: BodyLimits) -> Result<RawBody, BodyError> {
        let gzipped = req
            .headers()
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
        let sent = read_body(req.into_body(), limits.sent).await?;
        Ok(RawBody { sent, gzipped, limits })
    }

    /// Inflates the body and checks its shape: inline when it is small and uncompressed, else on the blocking
    /// pool under [`heavy_decodes`] (the permit travels with the text until it is parsed).
    pub async fn check(self) -> Result<JsonText, BodyError> {
        let RawBody { sent, gzipped, limits } = self;
        if !gzipped && sent.len() <= INLINE_DECODE {
            ShapeCheck::new(limits).feed(&sent)?;
            return Ok(JsonText { text: sent, permit: None });
        }
        let permit =
            heavy_decodes().acquire_owned().await.map_err(|_| BodyError::Unreadable("server is stopping".into()))?;
        let text = blocking(move || {
            if gzipped {
                inflate(&sent, limits).map(Bytes::from)
            } else {
                ShapeCheck::new(limits).feed(&sent).map(|()| sent)
            }
        })
        .await?;
        Ok(JsonText { text, permit: Some(permit) })
    }

    pub async fn parse<T: DeserializeOwned + Send + 'static>(self) -> Result<T, BodyError> {
        self.check().await?.parse().await
    }
}

/// JSON text within its limits.
pub struct JsonText {
    text: Bytes,
    permit: Option<OwnedSemaphorePermit>,
}

impl JsonText {
    /// Parses the text into `T`: inline when it is small, else on the blocking pool.
    pub async fn parse<T: DeserializeOwned + Send + 'static>(&self) -> Result<T, BodyError> {
        if self.permit.is_none() {
            return parse_json(&self.text);
        }
        let text = self.text.clone();
        blocking(move || parse_json(&text)).await
    }
}

async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> Result<R, BodyError> + Send + 'static,
) -> Result<R, BodyError> {
    tokio::task::spawn_blocking(work).await.map_err(|err| BodyError::Unreadable(format!("decoding failed: {err}")))?
}

async fn body_json<T: DeserializeOwned + Send + 'static>(req: Request, limits: BodyLimits) -> Result<T, BodyError> {
    RawBody::read(req, limits).await?.parse().await
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge(reason) => ApiError::TooLarge(reason),
            BodyError::Unreadable(reason) | BodyError::Malformed(reason) => ApiError::BadRequest(reason),
            BodyError::Invalid { field, reason } => ApiError::Validation { field, reason },
        }
    }
}

impl From<BodyError> for OsqueryError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge(reason) => OsqueryError::TooLarge(reason),
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
    /// A profile's label scope, by label names: Fleet's repeated `labels_include_all`, `labels_include_any` and
    /// `labels_exclude_any` fields (None: the field was not sent).
    pub labels: [Option<Vec<String>>; 3],
}

/// The form fields of a profile's label scope, in `TeamUpload::labels` order.
pub const LABEL_SCOPE_FIELDS: [&str; 3] = ["labels_include_any", "labels_include_all", "labels_exclude_any"];

pub async fn team_upload(mut form: axum::extract::Multipart, file_field: &str) -> Result<TeamUpload, ApiError> {
    let unreadable = |e: axum::extract::multipart::MultipartError| ApiError::BadRequest(format!("multipart: {e}"));
    let mut file = None;
    let mut team_id = None;
    let mut labels: [Option<Vec<String>>; 3] = Default::default();
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        let scope_field = LABEL_SCOPE_FIELDS.iter().position(|f| Some(*f) == field.name());
        if let Some(i) = scope_field.filter(|_| file_field == "profile") {
            let name = field.text().await.map_err(unreadable)?;
            labels[i].get_or_insert_with(Vec::new).push(name);
            continue;
        }
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
    Ok(TeamUpload { file_name, bytes, team_id, labels })
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

/// A JSON body of the REST API, within [`REST_LIMITS`] (gzip allowed; the limits apply to the inflated body).
/// Handlers take their `AuthUser` before it, so the bearer token is checked before the body is read.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send + 'static> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiJson(body_json(req, REST_LIMITS).await?))
    }
}

/// An unauthenticated JSON body of the osquery TLS API (enrollment), within [`AGENT_LIMITS`].
pub struct EnrollJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send + 'static> FromRequest<S> for EnrollJson<T> {
    type Rejection = OsqueryError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(EnrollJson(body_json(req, AGENT_LIMITS).await?))
    }
}

/// The node key an agent request carries: in the body (osquery's `node_key`, orbit's `orbit_node_key`), or
/// in `Authorization: NodeKey <key>` (osquery ≥ 5.23). Read first, alone, so a bad key is refused before the
/// rest of the body is built.
#[derive(serde::Deserialize)]
struct BodyNodeKey {
    #[serde(default, alias = "orbit_node_key")]
    node_key: Option<String>,
}

/// An authenticated JSON body of the osquery TLS API (gzip allowed) and the host whose node key it carries.
///
/// Cheap rejection first: a node key in the header is checked before the body is read; one in the body is
/// checked after the body's size and shape are (bounded, see [`BodyLimits`]) and before the body is parsed
/// into `T`. The limits are `T`'s ([`NodeKeyed::LIMITS`]).
pub struct OsqueryJson<T> {
    pub body: T,
    pub host: CachedHost,
}

impl<T: NodeKeyed + DeserializeOwned + Send + 'static> FromRequest<SharedState> for OsqueryJson<T> {
    type Rejection = OsqueryError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let header_key = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("NodeKey "))
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty());
        let header_host = match &header_key {
            Some(key) => Some(authenticate_as(state, key, T::KEY).await?),
            None => None,
        };
        let text = RawBody::read(req, T::LIMITS).await?.check().await?;
        let host = match header_host {
            Some(host) => host,
            None => {
                let BodyNodeKey { node_key } = text.parse().await?;
                let key = node_key.map(|k| k.trim().to_string()).filter(|k| !k.is_empty());
                let key = key.as_deref().ok_or(OsqueryError::NodeInvalid("missing node key"))?;
                authenticate_as(state, key, T::KEY).await?
            }
        };
        let body: T = text.parse().await?;
        // A body's own key, when it has one, must be the key that was checked.
        if let (Some(header_key), Some(body_key)) = (&header_key, body.node_key().map(str::trim))
            && !body_key.is_empty()
            && body_key != header_key
        {
            return Err(OsqueryError::NodeInvalid("node keys in header and body differ"));
        }
        Ok(OsqueryJson { body, host })
    }
}

/// The client's address (behind a trusted proxy, the one it forwarded), for rate limits and audit.
pub struct Client(pub std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(crate::auth::client_ip(parts)))
    }
}

/// Request bodies that carry a node key, and the limits they are read within.
pub trait NodeKeyed {
    /// Size and shape a body may have (see [`crate::extract::BodyLimits`]).
    const LIMITS: BodyLimits = AGENT_LIMITS;
    /// Whose node key it carries (osqueryd's unless said otherwise).
    const KEY: AgentKey = AgentKey::Osquery;
    fn node_key(&self) -> Option<&str>;
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

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_bombs_stop_at_the_inflated_limit() {
        let limits = BodyLimits { sent: 1 << 20, inflated: 1 << 20, depth: 8, values: 1000 };
        // A string of 2 MiB: a valid shape, too large once inflated.
        let mut text = b"{\"a\":\"".to_vec();
        text.extend(std::iter::repeat_n(b'x', 2 << 20));
        text.extend(b"\"}");
        let bomb = gzip(&text);
        assert!(bomb.len() < 16 << 10, "{}", bomb.len());
        match inflate(&bomb, limits) {
            Err(BodyError::TooLarge(reason)) => assert!(reason.contains("1 MiB after gunzip"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(inflate(b"not gzip", limits), Err(BodyError::Unreadable(_))));
        assert_eq!(inflate(&gzip(b"{\"a\":1}"), limits).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn value_bombs_stop_at_the_value_limit() {
        let limits = BodyLimits { sent: 64 << 20, inflated: 64 << 20, depth: 8, values: 1000 };
        // Millions of values in a few KiB of gzip: refused as soon as the count passes the limit.
        let mut text = b"{\"a\":[".to_vec();
        for _ in 0..4_000_000 {
            text.extend(b"0,");
        }
        text.extend(b"0]}");
        let bomb = gzip(&text);
        match inflate(&bomb, limits) {
            Err(BodyError::TooLarge(reason)) => assert!(reason.contains("more than 1000 values"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shape_check_counts_values_and_depth_outside_strings() {
        let limits = BodyLimits { sent: 1 << 20, inflated: 1 << 20, depth: 3, values: 5 };
        let check = |text: &str| ShapeCheck::new(limits).feed(text.as_bytes());
        assert!(check(r#"{"a":[1,2,3]}"#).is_ok());
        assert!(check(r#"{"a":"[[[[[[,,,,,,,,\"[[[[,,,,"}"#).is_ok(), "brackets and commas in strings do not count");
        assert!(check(r#"{"a":[[[1]]]}"#).is_err(), "depth 4");
        assert!(check(r#"{"a":[1,2,3,4,5,6]}"#).is_err(), "values");
        // Fed in pieces, a string split across chunks (even inside an escape) is followed correctly.
        let mut split = ShapeCheck::new(limits);
        for piece in [r#"{"a":"x\"#, r#"",[[[[,,,,,,"#, r#"","b":1}"#] {
            split.feed(piece.as_bytes()).unwrap();
        }
        assert_eq!((split.depth, split.in_string), (0, false));
    }

    #[test]
    fn bodies_must_be_objects() {
        assert!(matches!(parse_json::<serde_json::Value>(b"[1]"), Err(BodyError::Malformed(_))));
        assert!(parse_json::<serde_json::Value>(b"  {}").is_ok());
    }
}
