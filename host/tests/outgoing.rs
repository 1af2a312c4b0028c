//! The host's side of GCS: `--store gcs`, the emulator, the allow-list and the credentials, seen
//! from outside the real binary.
//!
//! The "emulator" here is a recorder on loopback (a hyper server) that answers every upload with
//! 200, so these tests see the exact requests the component made through the host, headers
//! included. Whether the objects are right is for the tests against fake-gcs-server; which
//! requests get a token or are refused is unit-tested in `host/src/outgoing.rs`.

use std::convert::Infallible;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::serve::{NGMETA, Server};

/// One request the recorder received.
#[derive(Debug, Clone)]
struct Recorded {
    /// `POST /upload/storage/v1/b/lab/o?uploadType=media&name=...`.
    request_line: String,
    /// Lowercase names, values as sent.
    headers: Vec<(String, String)>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A stand-in for the GCS emulator: records every request, answers uploads with 200 and
/// everything else with 404. Runs until the test process ends.
struct Recorder {
    url: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
    /// TCP connections accepted.
    connections: Arc<AtomicUsize>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the recorder");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener for tokio");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the recorder's runtime");
            runtime.block_on(serve(listener, log, accepted));
        });
        Recorder {
            url,
            seen,
            connections,
        }
    }

    fn seen(&self) -> Vec<Recorded> {
        self.seen.lock().expect("the recorder's lock").clone()
    }
}

/// Accepts connections until the test process ends, answering each request with [`answer`].
async fn serve(
    listener: std::net::TcpListener,
    log: Arc<Mutex<Vec<Recorded>>>,
    accepted: Arc<AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    while let Ok((stream, _)) = listener.accept().await {
        accepted.fetch_add(1, Ordering::Relaxed);
        let log = log.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let log = log.clone();
                async move { Ok::<_, Infallible>(answer(request, &log).await) }
            });
            // A connection the client drops mid-request only ends that connection.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Records `request`, reads its body whole, and answers an upload with 200, anything else 404.
async fn answer(request: Request<Incoming>, log: &Mutex<Vec<Recorded>>) -> Response<Full<Bytes>> {
    let recorded = Recorded {
        request_line: format!("{} {}", request.method(), request.uri()),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
    };
    // The client sends the whole body before it reads the answer; an error is a client gone.
    let _ = request.into_body().collect().await;
    let upload = recorded.request_line.starts_with("POST /upload/");
    log.lock().expect("the recorder's lock").push(recorded);
    let (status, body) = if upload {
        (StatusCode::OK, r#"{"kind": "storage#object"}"#)
    } else {
        (
            StatusCode::NOT_FOUND,
            r#"{"error": {"code": 404, "message": "Not Found"}}"#,
        )
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Host variables for a run against `recorder`: short retries, and a key file that does not
/// exist, so any look-up of credentials would fail loudly instead of finding a developer's.
fn emulator_env(recorder: &Recorder) -> Vec<(&'static str, String)> {
    vec![
        ("STORAGE_EMULATOR_HOST", recorder.url.clone()),
        ("EMWRITE_RETRY_BASE_MS", "1".to_owned()),
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/nonexistent/emwrite-test-key.json".to_owned(),
        ),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn store_gcs_uploads_bare_buckets_to_the_emulator_without_a_token() {
    let recorder = Recorder::start();
    let env = emulator_env(&recorder);
    let server = Server::start_with_env(&["--store", "gcs"], &as_refs(&env));

    let reply = server.post("/ngmeta", NGMETA);
    assert_eq!(
        reply.status,
        200,
        "{reply:?}\nserver log:\n{}",
        server.log()
    );

    let seen = recorder.seen();
    let info = seen
        .iter()
        .find(|r| {
            r.request_line.starts_with(
                "POST /upload/storage/v1/b/lab/o?uploadType=media&name=neuroglancer%2Fjpeg%2Finfo",
            )
        })
        .unwrap_or_else(|| panic!("no upload of the info object among {seen:#?}"));
    assert_eq!(info.header("content-type"), Some("application/json"));
    for request in &seen {
        assert_eq!(request.header("authorization"), None, "{request:#?}");
    }
    // Nothing went to the local disk: the guest had no directory to write to.
    let local = server.data().join("lab");
    assert!(!local.exists(), "{} was written", local.display());
    let log = server.log();
    assert!(log.contains("store gcs"), "{log}");
    assert!(
        !log.contains("GCS credentials"),
        "an emulator run must not look for credentials:\n{log}"
    );
}

#[test]
fn requests_of_every_instance_share_one_keep_alive_connection() {
    let recorder = Recorder::start();
    let env = emulator_env(&recorder);
    let server = Server::start_with_env(&["--store", "gcs"], &as_refs(&env));
    // Each request runs in a fresh instance and, for each of two info objects, one after the
    // other, reads what is there and uploads it.
    let with_raw = NGMETA.replace(r#""writeRaw": "False""#, r#""writeRaw": "True""#);
    for _ in 0..5 {
        let reply = server.post("/ngmeta", &with_raw);
        assert_eq!(reply.status, 200, "{reply:?}\n{}", server.log());
    }
    assert_eq!(recorder.seen().len(), 20, "{:#?}", recorder.seen());
    assert_eq!(recorder.connections.load(Ordering::Relaxed), 1);
}

#[test]
fn the_store_can_be_chosen_by_environment_and_allow_hosts_listed_there() {
    let recorder = Recorder::start();
    let mut env = emulator_env(&recorder);
    env.push(("EMWRITE_STORE", "gcs".to_owned()));
    env.push(("EMWRITE_ALLOW_HOSTS", "a.test,b.test:8080".to_owned()));
    let server = Server::start_with_env(&[], &as_refs(&env));

    let reply = server.post("/ngmeta", NGMETA);
    assert_eq!(
        reply.status,
        200,
        "{reply:?}\nserver log:\n{}",
        server.log()
    );
    assert!(!recorder.seen().is_empty());
    let log = server.log();
    let emulator = recorder.url.trim_start_matches("http://");
    let allowed = format!(
        "outgoing requests allowed to storage.googleapis.com:443, {emulator} \
         (STORAGE_EMULATOR_HOST), a.test, b.test:8080"
    );
    assert!(log.contains(&allowed), "{allowed:?} not in the log:\n{log}");
}

#[test]
fn gcs_without_credentials_fails_the_request_and_the_log_says_why() {
    // No emulator: `gs://` goes to GCS itself, which needs a token, and the key file is missing.
    let env = [
        ("EMWRITE_RETRY_BASE_MS", "1"),
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/nonexistent/emwrite-test-key.json",
        ),
    ];
    let server = Server::start_with_env(&[], &env);
    let request = NGMETA.replace(r#""dest": "lab""#, r#""dest": "gs://lab""#);
    let reply = server.post("/ngmeta", &request);
    assert!(
        reply.status >= 500,
        "{reply:?}\nserver log:\n{}",
        server.log()
    );
    // The host's code for "set up wrong", which the component does not retry.
    assert!(reply.body.contains("configuration-error"), "{reply:?}");

    let log = server.log();
    assert!(
        log.contains(
            "GCS credentials: GOOGLE_APPLICATION_CREDENTIALS=/nonexistent/emwrite-test-key.json"
        ),
        "the log should name the missing key file:\n{log}"
    );
    assert_eq!(
        log.matches("requests to GCS fail until").count(),
        1,
        "{log}"
    );
}

#[test]
fn allow_host_rejects_urls_with_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_emwrite"))
        .args(["serve", "--port", "0", "--allow-host", "http://example.com"])
        .output()
        .expect("run emwrite");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HOST:PORT"), "{stderr}");
}
