//! `emwrite serve` end to end: the real binary on a loopback port, driven over HTTP/1.1.
//!
//! Each test starts its own server with `--port 0` (the server prints the port it got) and a
//! fresh data directory, and kills it on drop. The client is ureq's, which reads the status and
//! body as any HTTP/1.1 client would, chunked or not.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Host variables that change what the server does; each server starts without them unless a
/// test sets them, so a developer's own settings cannot change a test's outcome.
const HOST_SETTINGS: [&str; 6] = [
    "EMWRITE_STORE",
    "EMWRITE_ALLOW_HOSTS",
    "EMWRITE_RETRY_BASE_MS",
    "STORAGE_EMULATOR_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "PORT",
];

/// A running `emwrite serve`, killed (and its data directory removed) on drop.
pub(crate) struct Server {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(extra_args: &[&str]) -> Server {
        Server::start_with_env(extra_args, &[])
    }

    /// A server with `extra_args` and the host variables `env`.
    pub(crate) fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "emwrite-serve-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("data")).expect("create the data dir");
        let log = fs::File::create(dir.join("server.log")).expect("create the server log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_emwrite"));
        for name in HOST_SETTINGS {
            command.env_remove(name);
        }
        let mut child = command
            .envs(env.iter().copied())
            .arg("serve")
            .args(["--addr", "127.0.0.1", "--port", "0", "--data-dir"])
            .arg(dir.join("data"))
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start emwrite serve");

        // Waiting for the port = waiting for this line; if the server dies first, stdout ends.
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's stdout");
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        let Some(url) = line.trim().strip_prefix("listening on http://") else {
            panic!(
                "server did not start (stdout {line:?}); its log:\n{}",
                server.log()
            );
        };
        server.addr = url.parse().expect("a socket address");
        server
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Reply {
        self.request("GET", path, "")
    }

    pub(crate) fn post(&self, path: &str, body: &str) -> Reply {
        self.request("POST", path, body)
    }

    fn request(&self, method: &str, path: &str, body: &str) -> Reply {
        // Error statuses are answers to check, not failures of the client.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("http://{}{path}", self.addr);
        let sent = match method {
            "GET" => agent.get(&url).call(),
            _ => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body),
        };
        let reply = sent.and_then(|mut response| {
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_string()?;
            Ok(Reply { status, body })
        });
        reply.unwrap_or_else(|error| {
            panic!(
                "no reply to {method} {path}: {error}\nserver log:\n{}",
                self.log()
            )
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Status and body of one HTTP/1.1 response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// A complete, valid `/ngmeta` request; tests remove or break one field.
pub(crate) const NGMETA: &str = r#"{"dest": "lab", "minz": 0, "maxz": 9, "shard-size": 1024,
    "bbox": "[100, 80]", "writeRaw": "False"}"#;

#[test]
fn healthz_answers_ok() {
    let server = Server::start();
    let reply = server.get("/healthz");
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn malformed_json_is_400_naming_the_problem() {
    let server = Server::start();
    let reply = server.post("/ngmeta", r#"{"dest": "lab", "minz": "#);
    assert_eq!(reply.status, 400, "{reply:?}");
    // serde_json names where the text stopped making sense.
    assert!(
        reply.body.contains("line 1 column"),
        "the message should locate the problem: {reply:?}"
    );
}

#[test]
fn missing_field_is_400_naming_it() {
    let server = Server::start();
    let without_maxz = NGMETA.replace(r#""maxz": 9,"#, "");
    let reply = server.post("/ngmeta", &without_maxz);
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(
        reply.body.contains("maxz"),
        "the message should name maxz: {reply:?}"
    );
}

#[test]
fn server_keeps_serving_after_errors() {
    let server = Server::start();
    for body in ["", "not json", "[]", r#"{"dest": 7}"#] {
        let reply = server.post("/alignedslice", body);
        assert_eq!(reply.status, 400, "{body:?}: {reply:?}");
    }
    assert_eq!(server.get("/nowhere").status, 404);
    assert_eq!(server.get("/healthz").status, 200);
    let reply = server.post("/ngmeta", NGMETA);
    assert_eq!(reply.status, 200, "{reply:?}\n{}", server.log());
    assert_eq!(reply.body, "success");
    assert!(server.data().join("lab/neuroglancer/jpeg/info").is_file());
}

#[test]
fn memory_limit_is_413_and_the_server_survives_it() {
    // Far below what any Rust component needs to instantiate.
    let server = Server::start_with(&["--memory-limit", "64KiB"]);
    let reply = server.post("/ngmeta", NGMETA);
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(reply.body.contains("memory limit"), "{reply:?}");
    assert_eq!(server.post("/ngmeta", NGMETA).status, 413);
}

#[test]
fn aligned_slice_writes_the_aligned_image_and_tile_pack() {
    let server = Server::start();
    write_gray_png(&server.data().join("lab/raw/s0.png"), 40, 30);
    let reply = server.post(
        "/alignedslice",
        r#"{"img": "s0.png", "transform": "[1 0 0 1 5 5]", "bbox": "[48, 36]",
            "dest": "lab", "dest-tmp": "lab-tmp", "slice": 0}"#,
    );
    assert_eq!(reply.status, 200, "{reply:?}\n{}", server.log());
    let aligned = image::open(server.data().join("lab/align/s0.png")).unwrap();
    assert_eq!((aligned.width(), aligned.height()), (48, 36));
    assert!(server.data().join("lab-tmp/0").is_file());
}

fn write_gray_png(path: &Path, width: u32, height: u32) {
    let parent = path.parent().expect("an object path has a bucket folder");
    fs::create_dir_all(parent).expect("create the raw folder");
    let image = image::GrayImage::from_fn(width, height, |x, y| image::Luma([(x * 5 + y) as u8]));
    image.save(path).expect("write the raw PNG");
}
