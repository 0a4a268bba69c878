//! The SDK's REST wire protocol, as any Agones SDK speaks it to a sidecar: the one path both
//! runtimes' servers are driven through.

use std::net::SocketAddr;

use serde_json::json;

use super::runtime::SdkCall;

/// Makes `call` on the sidecar whose REST port is at `addr`.
pub async fn call(addr: SocketAddr, call: SdkCall) -> Result<(), String> {
    let (path, body) = match call {
        SdkCall::Ready => ("ready", json!({})),
        SdkCall::Allocate => ("allocate", json!({})),
        SdkCall::Shutdown => ("shutdown", json!({})),
        // int64 is a JSON string on the REST gateway.
        SdkCall::Reserve(seconds) => ("reserve", json!({"seconds": seconds.to_string()})),
    };
    let url = format!("http://{addr}/{path}");
    let response =
        reqwest::Client::new().post(&url).json(&body).send().await.map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = response.text().await.unwrap_or_default();
        Err(format!("POST {url} answered {status}: {text}"))
    }
}
