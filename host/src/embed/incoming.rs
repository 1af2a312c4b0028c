//! One HTTP request through a fresh instance's `wasi:http/incoming-handler`, for `emwrite serve`
//! (`server/serve.rs`).
//!
//! The flow is `wasmtime serve`'s: the handler runs in its own task, the response arrives
//! through the `response-outparam` as soon as the guest sets it, and the body streams while the
//! guest is still writing it; the task's outcome says whether it finished cleanly.

use bytes::Bytes;
use hyper::body::Body;
use hyper::{Request, Response};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::embed::engine::{Emwrite, HostState};
use crate::error::HostError;

/// A response the guest has set, and the task still running its handler.
pub struct Started {
    /// Status and headers are final; the body streams from the guest.
    pub response: Response<HyperOutgoingBody>,
    /// Ends when the handler returns; an error here after the response started means the body
    /// was cut short.
    pub finished: JoinHandle<Result<(), HostError>>,
}

/// Pre-instantiates the `wasi:http/proxy` exports once.
pub fn proxy_pre(emwrite: &Emwrite) -> Result<ProxyPre<HostState>, HostError> {
    ProxyPre::new(emwrite.instance_pre().clone()).map_err(|e| {
        HostError::engine(
            "the component does not export wasi:http/incoming-handler",
            &e,
        )
    })
}

/// Instantiates the component in a fresh store and hands it `request`; `tag` names the request
/// in logs and errors.
pub async fn handle<B>(
    emwrite: &Emwrite,
    proxy: &ProxyPre<HostState>,
    tag: String,
    request: Request<B>,
) -> Result<Started, HostError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let mut store = emwrite.new_store(&tag)?;
    let (sender, receiver) = oneshot::channel();
    let request = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)
        .map_err(|e| HostError::Task {
            context: tag.clone(),
            error: emwrite::Error::bad_field("request", format!("{e:#}")),
        })?;
    let response_out = store
        .data_mut()
        .http()
        .new_response_outparam(sender)
        .map_err(|e| HostError::engine(&tag, &e))?;

    let finished = tokio::spawn({
        let emwrite = emwrite.clone();
        let proxy = proxy.clone();
        let tag = tag.clone();
        async move {
            let outcome = emwrite
                .bounded(async {
                    let instance = proxy.instantiate_async(&mut store).await?;
                    instance
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, request, response_out)
                        .await
                })
                .await;
            outcome.map_err(|e| emwrite.failure(&store, &tag, e))
        }
    });

    match receiver.await {
        Ok(Ok(response)) => Ok(Started { response, finished }),
        Ok(Err(code)) => Err(HostError::Status {
            context: tag,
            status: 500,
            message: format!("the component answered with error code {code:?}"),
        }),
        // The guest dropped the outparam without setting it: it returned early or trapped, and
        // the task says which.
        Err(_) => match finished.await {
            Ok(Err(error)) => Err(error),
            Ok(Ok(())) => Err(HostError::Status {
                context: tag,
                status: 500,
                message: "the component returned without setting a response".to_owned(),
            }),
            Err(join) => Err(HostError::Engine {
                context: tag,
                message: format!("host task failed: {join}"),
            }),
        },
    }
}
