//! A scripted [`HttpClient`] for tests: answers from a list, records what was sent and how long
//! it was asked to sleep. The GCS store's tests and the Spin build's token client's tests share
//! it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use http::Method;

use super::http_client::{HttpClient, HttpRequest, HttpResponse, TransportError};

/// Answers from a script, in order; records every request and sleep.
#[derive(Default)]
pub(crate) struct ScriptedClient {
    answers: RefCell<VecDeque<Result<HttpResponse, TransportError>>>,
    /// The requests sent so far, in order.
    pub(crate) sent: RefCell<Vec<Sent>>,
    /// The sleeps asked for so far, in order.
    pub(crate) slept: RefCell<Vec<Duration>>,
}

/// A request as the client saw it.
pub(crate) struct Sent {
    pub(crate) method: Method,
    pub(crate) url: String,
    /// Names lowercase, as the `http` crate keeps them.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl fmt::Debug for ScriptedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScriptedClient ({} sent)", self.sent.borrow().len())
    }
}

impl ScriptedClient {
    /// A client that gives `answers` to the requests sent, one each, in order.
    pub(crate) fn new(answers: Vec<Result<HttpResponse, TransportError>>) -> Self {
        Self {
            answers: RefCell::new(answers.into()),
            ..Self::default()
        }
    }

    /// The value of header `name` (lowercase) of request `request`, if it had one.
    pub(crate) fn header(&self, request: usize, name: &str) -> Option<String> {
        self.sent.borrow()[request]
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// The URLs sent to, in order.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.sent.borrow().iter().map(|s| s.url.clone()).collect()
    }
}

impl HttpClient for ScriptedClient {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self.sent.borrow_mut().push(Sent {
            method: request.method().clone(),
            url: request.uri().to_string(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect(),
            body: request.body().to_vec(),
        });
        self.answers
            .borrow_mut()
            .pop_front()
            .expect("the script has an answer for every request")
    }

    async fn sleep(&self, duration: Duration) {
        self.slept.borrow_mut().push(duration);
    }
}

/// Lets a test keep the client while a store owns a reference to it.
impl HttpClient for &ScriptedClient {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(request).await
    }

    async fn sleep(&self, duration: Duration) {
        (**self).sleep(duration).await;
    }
}

/// An answer of `status` with `body`.
pub(crate) fn answer(status: u16, body: &str) -> Result<HttpResponse, TransportError> {
    Ok(http::Response::builder()
        .status(status)
        .body(body.as_bytes().to_vec())
        .expect("a status and a body make a response"))
}
