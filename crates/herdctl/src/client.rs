//! HTTP access to the server's REST API with the saved session, errors in Fleet's shape made readable.

use crate::session::Saved;
use anyhow::{Context, Result, bail};
use herd_proto::fleet::ErrorBody;
use reqwest::{Client, Method};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::time::Duration;

pub struct Api {
    client: Client,
    server: String,
    token: Option<String>,
}

/// A client that trusts `ca_cert` only, or the system's roots without one.
pub fn http_client(ca_cert: Option<&Path>) -> Result<Client> {
    let builder = Client::builder().timeout(Duration::from_secs(60));
    let builder = match ca_cert {
        Some(path) => builder.use_preconfigured_tls(herd_tls::pinned_client_config(path)?),
        None => builder,
    };
    Ok(builder.build()?)
}

impl Api {
    pub fn new(server: &str, ca_cert: Option<&Path>, token: Option<String>) -> Result<Api> {
        Ok(Api { client: http_client(ca_cert)?, server: server.trim_end_matches('/').to_string(), token })
    }

    pub fn from_saved(saved: &Saved) -> Result<Api> {
        Api::new(&saved.server, saved.ca_cert.as_deref(), Some(saved.token.clone()))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&dyn erased::Body>,
    ) -> Result<T> {
        let text = self
            .send(method.clone(), path, |request| match body {
                Some(body) => Ok(request.json(&body.to_json()?)),
                None => Ok(request),
            })
            .await?;
        // DELETE answers may be empty (Fleet's 204).
        let text = if text.is_empty() { "{}".to_string() } else { text };
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: unexpected answer {text:?}"))
    }

    /// Sends a request built by `build` and answers the body's text, or the server's refusal made readable.
    async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder>,
    ) -> Result<String> {
        let url = format!("{}{path}", self.server);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let request = build(request)?;
        let response = request.send().await.with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("{method} {url}: reading the answer"))?;
        if !status.is_success() {
            let reason = match serde_json::from_str::<ErrorBody>(&text) {
                Ok(error) => error
                    .errors
                    .iter()
                    .map(|e| if e.name == "base" { e.reason.clone() } else { format!("{}: {}", e.name, e.reason) })
                    .collect::<Vec<_>>()
                    .join("; "),
                Err(_) => text.chars().take(300).collect(),
            };
            if status == reqwest::StatusCode::UNAUTHORIZED {
                bail!("{method} {path}: {reason} (log in again with `herdctl login`)");
            }
            bail!("{method} {path}: {status}: {reason}");
        }
        Ok(text)
    }

    /// A body that is not JSON (a script's contents with `?alt=media`).
    pub async fn get_text(&self, path: &str) -> Result<String> {
        self.send(Method::GET, path, Ok).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::DELETE, path, None).await
    }

    /// A multipart upload of one file (`field`, named `file_name`) with the form's text fields.
    pub async fn upload<T: DeserializeOwned>(
        &self,
        path: &str,
        field: &str,
        file_name: &str,
        contents: Vec<u8>,
        text_fields: &[(&str, String)],
    ) -> Result<T> {
        let mut form = reqwest::multipart::Form::new()
            .part(field.to_string(), reqwest::multipart::Part::bytes(contents).file_name(file_name.to_string()));
        for (name, value) in text_fields {
            form = form.text(name.to_string(), value.clone());
        }
        let text = self.send(Method::POST, path, |request| Ok(request.multipart(form))).await?;
        serde_json::from_str(&text).with_context(|| format!("POST {path}: unexpected answer {text:?}"))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &(impl Serialize + Sync)) -> Result<T> {
        self.call(Method::POST, path, Some(&erased::Json(body))).await
    }

    pub async fn patch<T: DeserializeOwned>(&self, path: &str, body: &(impl Serialize + Sync)) -> Result<T> {
        self.call(Method::PATCH, path, Some(&erased::Json(body))).await
    }
}

/// Lets one `call` take any serialisable body without making it generic over the body type.
mod erased {
    use serde::Serialize;

    pub trait Body: Sync {
        fn to_json(&self) -> serde_json::Result<serde_json::Value>;
    }

    pub struct Json<'a, T: ?Sized>(pub &'a T);

    impl<T: Serialize + Sync + ?Sized> Body for Json<'_, T> {
        fn to_json(&self) -> serde_json::Result<serde_json::Value> {
            serde_json::to_value(self.0)
        }
    }
}
