//! Objects uploaded to GCS in parts: resumable upload sessions, and objects whose prefix comes
//! last, composed from two hidden temporaries.
//!
//! docs/design.md §6. An object written with a prefix that comes last
//! ([`StreamingStorage::start_put_with_prefix`]) is uploaded as two hidden temporary objects
//! beside it, `<dir>/.<name>.part-<16 hex>-body` (streamed) and `…-prefix`, which one `compose`
//! request concatenates into the object before both are deleted. GCS cannot write into the start
//! of an object it already holds, and compose copies nothing through the client.

use super::*;

/// The part size of resumable uploads: GCS takes parts in multiples of 256 KiB, and larger
/// parts mean fewer round trips; 8 MiB is what Google's client libraries send by default.
pub const UPLOAD_PART_BYTES: usize = 8 << 20;

/// The header naming the content type of a resumable upload's object.
const UPLOAD_CONTENT_TYPE: HeaderName = HeaderName::from_static("x-upload-content-type");

impl<C: HttpClient> StreamingStorage for GcsStorage<C> {
    type Writer<'a>
        = GcsWriter<'a, C>
    where
        C: 'a;
    type PrefixedWriter<'a>
        = GcsPrefixedWriter<'a, C>
    where
        C: 'a;

    /// Streams the appended bytes to a hidden temporary object beside `object` (see the module
    /// docs); finishing uploads the prefix and composes the two.
    async fn start_put_with_prefix(
        &self,
        object: &ObjectPath,
        content_type: &str,
        prefix_len: u64,
    ) -> Result<GcsPrefixedWriter<'_, C>> {
        let token = part_token();
        let body_object = hidden_part(object, &token, "body");
        let mut body = self.start_put(&body_object, BINARY).await?;
        body.fresh_name = true;
        Ok(GcsPrefixedWriter {
            body,
            object: object.clone(),
            prefix_object: hidden_part(object, &token, "prefix"),
            body_object,
            content_type: content_type.to_owned(),
            prefix_len,
        })
    }

    /// Opens a resumable upload session (docs/design.md §6): the object exists only once the
    /// last part arrives, so an abandoned session leaves nothing (GCS drops it after a week).
    async fn start_put(&self, object: &ObjectPath, content_type: &str) -> Result<GcsWriter<'_, C>> {
        let url = self.upload_url(object, "resumable");
        // The object's content type goes both as GCS's header and in the metadata body, which
        // is what emulators read.
        let metadata = serde_json::json!({ "contentType": content_type }).to_string();
        let headers = [
            (UPLOAD_CONTENT_TYPE, content_type.to_owned()),
            (CONTENT_TYPE, "application/json; charset=UTF-8".to_owned()),
        ];
        let request = Self::request(object, Method::POST, &url, &headers, metadata)?;
        let response = self.send(object, &request, Doing::Writing).await?;
        if !response.status().is_success() {
            return Err(status_error(object, &response, Doing::Writing));
        }
        let location = header(response.headers(), LOCATION.as_str()).ok_or_else(|| {
            Error::storage(object, "the resumable upload answer has no Location header")
        })?;
        let session = self.session_url(object, location)?;
        Ok(GcsWriter {
            store: self,
            object: object.clone(),
            session,
            buffer: Vec::new(),
            persisted: 0,
            fresh_name: false,
        })
    }
}

/// An object being uploaded to GCS in parts of [`UPLOAD_PART_BYTES`] through a resumable
/// upload session.
#[derive(Debug)]
pub struct GcsWriter<'a, C> {
    store: &'a GcsStorage<C>,
    object: ObjectPath,
    /// The session URI GCS answered with.
    session: String,
    /// Bytes appended but not yet persisted by GCS.
    buffer: Vec<u8>,
    /// Bytes GCS has persisted, all before `buffer`.
    persisted: u64,
    /// Whether no other upload ever writes `object` (a temporary part with a random name), so
    /// that an object of the right size under it can only be this upload's.
    fresh_name: bool,
}

impl<C: HttpClient> GcsWriter<'_, C> {
    /// Sends the buffered bytes; with `total`, as the object's last part.
    ///
    /// The buffer moves into the request (no copy of the part while it is sent, and a new one
    /// fills after it); what GCS did not keep of it comes back into the buffer.
    async fn send_part(&mut self, total: Option<u64>) -> Result<()> {
        let part = Bytes::from(std::mem::take(&mut self.buffer));
        match self.send_bytes(part.clone(), total).await {
            Ok(kept) => {
                self.buffer = part[kept..].to_vec();
                Ok(())
            }
            Err(error) => {
                // The request is gone, so the part is ours alone again: back without a copy.
                self.buffer = Vec::from(part);
                Err(error)
            }
        }
    }

    /// Sends `part`, the bytes after the persisted ones; with `total`, as the object's last
    /// part. Returns how many of them GCS kept.
    async fn send_bytes(&mut self, part: Bytes, total: Option<u64>) -> Result<usize> {
        let len = part.len();
        let first = self.persisted;
        let range = match (len, total) {
            (0, Some(total)) => format!("bytes */{total}"),
            (_, Some(total)) => format!("bytes {first}-{}/{total}", first + len as u64 - 1),
            (_, None) => format!("bytes {first}-{}/*", first + len as u64 - 1),
        };
        let object = &self.object;
        let request = GcsStorage::<C>::request(
            object,
            Method::PUT,
            &self.session,
            &[(CONTENT_RANGE, range)],
            part,
        )?;
        let response = match self.store.send(object, &request, Doing::Writing).await {
            Ok(response) => response,
            // The last part landed but its answer was lost, and every retry to the finished
            // session failed too (fake-gcs-server drops such answers midway): an object under a
            // name only this upload writes, of the total size, is this upload, whole.
            Err(error) => match total {
                Some(total)
                    if self.fresh_name
                        && self.store.size_of(object).await.ok().flatten() == Some(total) =>
                {
                    self.persisted += len as u64;
                    return Ok(len);
                }
                _ => return Err(error),
            },
        };
        match (response.status().as_u16(), total) {
            (200 | 201, Some(_)) => {
                self.persisted += len as u64;
                Ok(len)
            }
            // "Resume incomplete": `Range: bytes=0-N` says how much GCS kept of what it got,
            // which may be less than was sent; the rest goes again with the next part.
            (308, None) => {
                let kept = header(response.headers(), RANGE.as_str())
                    .and_then(|r| r.strip_prefix("bytes=0-"))
                    .and_then(|last| last.trim().parse::<u64>().ok())
                    .map_or(0, |last| last + 1);
                let taken = kept
                    .checked_sub(first)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0 && n <= len)
                    .ok_or_else(|| {
                        Error::storage(
                            object,
                            format!(
                                "the upload session kept bytes up to {kept} after part \
                                 {first}..{}",
                                first + len as u64
                            ),
                        )
                    })?;
                self.persisted = kept;
                Ok(taken)
            }
            // The last part landed but its answer was lost (a reset after the server had it),
            // and the retry found the session finished: the object is there, whole.
            (404 | 410, Some(total)) if self.store.size_of(object).await? == Some(total) => {
                self.persisted += len as u64;
                Ok(len)
            }
            // The session expired (GCS keeps one a week) or was lost: the parts already sent
            // are gone with it, so only running the task again can write the object.
            (404 | 410, _) => Err(Error::storage(
                object,
                format!(
                    "the upload session ended before the object was whole ({})",
                    describe_status(&response)
                ),
            )),
            _ => Err(status_error(object, &response, Doing::Writing)),
        }
    }
}

impl<C: HttpClient> ObjectWriter for GcsWriter<'_, C> {
    async fn append(&mut self, mut bytes: &[u8]) -> Result<()> {
        // The buffer never holds more than a part: a shard streams through several writers at
        // once, and a buffer grown by doubling past 8 MiB would keep 16 MiB of linear memory
        // each (which never shrinks) for the task's life.
        while !bytes.is_empty() {
            let room = UPLOAD_PART_BYTES - self.buffer.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            reserve_within_part(&mut self.buffer, now.len());
            self.buffer.extend_from_slice(now);
            bytes = later;
            if self.buffer.len() == UPLOAD_PART_BYTES {
                self.send_part(None).await?;
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<u64> {
        let total = self.persisted + self.buffer.len() as u64;
        self.send_part(Some(total)).await?;
        Ok(total)
    }
}

/// Makes room in `buffer` for `more` bytes, growing it by doubling as `Vec` does but never past
/// [`UPLOAD_PART_BYTES`], which it is not asked to exceed.
fn reserve_within_part(buffer: &mut Vec<u8>, more: usize) {
    let needed = buffer.len() + more;
    if needed > buffer.capacity() {
        let target = needed
            .max(buffer.capacity() * 2)
            .min(UPLOAD_PART_BYTES)
            .max(needed);
        buffer.reserve_exact(target - buffer.len());
    }
}

/// A fresh random token for the temporary objects of one prefixed put.
fn part_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    // Each `RandomState` has its own keys, drawn from the OS (wasi:random in the component).
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{random:016x}")
}

/// The hidden temporary object `<dir>/.<name>.part-<token>-<kind>` beside `object`.
fn hidden_part(object: &ObjectPath, token: &str, kind: &str) -> ObjectPath {
    let (dir, name) = match object.name.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), object.name.as_str()),
    };
    ObjectPath {
        name: format!("{dir}.{name}.part-{token}-{kind}"),
        ..object.clone()
    }
}

/// An object being uploaded to GCS after a prefix that comes last: the appended bytes stream to
/// a hidden temporary object; [`PrefixedObjectWriter::send_with_prefix`] uploads the prefix as
/// another, and completing composes the two into the object. Dropped unfinished, it abandons the
/// upload session and leaves nothing.
#[derive(Debug)]
pub struct GcsPrefixedWriter<'a, C> {
    body: GcsWriter<'a, C>,
    object: ObjectPath,
    body_object: ObjectPath,
    prefix_object: ObjectPath,
    content_type: String,
    prefix_len: u64,
}

impl<'a, C: HttpClient> PrefixedObjectWriter for GcsPrefixedWriter<'a, C> {
    type Sent = GcsSentObject<'a, C>;

    async fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.body.append(bytes).await
    }

    async fn send_with_prefix(self, prefix: &[u8]) -> Result<GcsSentObject<'a, C>> {
        if prefix.len() as u64 != self.prefix_len {
            return Err(prefix_length_error(
                &self.object,
                self.prefix_len,
                prefix.len(),
            ));
        }
        let store = self.body.store;
        // The body's last part and the prefix are separate objects: they go side by side.
        let (appended, prefixed) = futures::join!(
            self.body.finish(),
            store.put(&self.prefix_object, prefix, BINARY)
        );
        let sent = GcsSentObject {
            store,
            object: self.object,
            parts: [self.prefix_object, self.body_object],
            content_type: self.content_type,
            bytes: self.prefix_len,
        };
        match (appended, prefixed) {
            (Ok(appended), Ok(())) => Ok(GcsSentObject {
                bytes: sent.bytes + appended,
                ..sent
            }),
            (Err(e), _) | (_, Err(e)) => {
                // The temporaries will not be composed: whichever landed goes (a note cannot
                // reach the report with the error, and the error is what matters).
                let _ = sent.delete_parts().await;
                Err(e)
            }
        }
    }
}

/// A prefixed object whose prefix and body are both on GCS as hidden temporaries; completing
/// composes them into the object and deletes them: two round trips, which the caller may
/// overlap with sending the next object. Dropped without completing, it leaves both
/// temporaries behind.
#[derive(Debug)]
pub struct GcsSentObject<'a, C> {
    store: &'a GcsStorage<C>,
    object: ObjectPath,
    /// The prefix's temporary object, then the body's: the compose's order.
    parts: [ObjectPath; 2],
    content_type: String,
    /// The object's size, prefix included.
    bytes: u64,
}

impl<C: HttpClient> GcsSentObject<'_, C> {
    /// Deletes both temporaries side by side; says what could not be deleted. (Deleting one that
    /// was never written answers 404, which `delete` takes as done.)
    async fn delete_parts(&self) -> Vec<String> {
        let [prefix, body] = &self.parts;
        let (first, second) = futures::join!(self.store.delete(prefix), self.store.delete(body));
        [first, second]
            .into_iter()
            .filter_map(|deleted| deleted.err())
            .map(|e| format!("temporary object left behind: {e}"))
            .collect()
    }
}

impl<C: HttpClient> SentObject for GcsSentObject<'_, C> {
    async fn complete(self) -> Result<FinishedObject> {
        let parts = [&self.parts[0], &self.parts[1]];
        let composed = self
            .store
            .compose(&self.object, &parts, &self.content_type)
            .await;
        // Whether or not the object is whole, the temporaries have served; one that cannot be
        // deleted is worth a note, not a failed task.
        let notes = self.delete_parts().await;
        composed?;
        Ok(FinishedObject {
            bytes: self.bytes,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{DEFAULT_ATTEMPTS, object, reset, store};
    use super::*;
    use crate::storage::http_client::TransportError;
    use crate::storage::scripted_client::{ScriptedClient, answer};

    fn answer_with(status: u16, name: &str, value: &str) -> Result<HttpResponse, TransportError> {
        Ok(http::Response::builder()
            .status(status)
            .header(name, value)
            .body(Vec::new())
            .unwrap())
    }

    #[test]
    fn streamed_uploads_go_in_parts_through_one_resumable_session() {
        // The emulator behind a proxy names its own address; the parts go to the store's base.
        let location =
            "http://10.9.9.9:4443/upload/storage/v1/b/lab/o?uploadType=resumable&upload_id=s1";
        let session =
            "http://127.0.0.1:9/upload/storage/v1/b/lab/o?uploadType=resumable&upload_id=s1";
        let part = UPLOAD_PART_BYTES as u64;
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", location),
            // GCS keeps only half of the first part; the rest goes again with the next.
            answer_with(308, "range", &format!("bytes=0-{}", part / 2 - 1)),
            reset(),
            answer_with(308, "range", &format!("bytes=0-{}", part * 3 / 2 - 1)),
            answer(200, "{}"),
        ]);
        let gcs = store(&client);
        let o = object("raw/0.shard");
        let data: Vec<u8> = (0..part * 2 + 10).map(|i| (i % 251) as u8).collect();
        let mut writer = pollster::block_on(gcs.start_put(&o, super::super::BINARY)).unwrap();
        for piece in data.chunks(3 << 20) {
            pollster::block_on(writer.append(piece)).unwrap();
            assert!(
                writer.buffer.capacity() <= UPLOAD_PART_BYTES,
                "at most a part held"
            );
        }
        assert_eq!(
            pollster::block_on(writer.finish()).unwrap(),
            data.len() as u64
        );

        let sent = client.sent.borrow();
        assert_eq!(
            sent[0].url,
            "http://127.0.0.1:9/upload/storage/v1/b/lab/o?uploadType=resumable&name=raw%2F0.shard"
        );
        assert_eq!(
            client.header(0, "x-upload-content-type").as_deref(),
            Some("application/octet-stream")
        );
        let ranges: Vec<_> = (1..sent.len())
            .map(|i| client.header(i, "content-range").unwrap())
            .collect();
        assert_eq!(
            ranges,
            [
                format!("bytes 0-{}/*", part - 1),
                format!("bytes {}-{}/*", part / 2, part * 3 / 2 - 1),
                format!("bytes {}-{}/*", part / 2, part * 3 / 2 - 1),
                format!("bytes {}-{}/{}", part * 3 / 2, data.len() - 1, data.len()),
            ]
        );
        assert!(
            sent[1..]
                .iter()
                .all(|r| r.method == Method::PUT && r.url == session)
        );
        let mut uploaded = sent[1].body[..(part / 2) as usize].to_vec();
        uploaded.extend_from_slice(&sent[3].body);
        uploaded.extend_from_slice(&sent[4].body);
        assert_eq!(uploaded, data, "every byte once, in order");
        assert_eq!(gcs.retries(), 1);
    }

    #[test]
    fn small_and_empty_streamed_objects_take_one_last_part() {
        let session = "http://127.0.0.1:9/session";
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", session),
            answer(200, "{}"),
            answer_with(200, "location", session),
            answer(201, "{}"),
        ]);
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put(&object("a"), super::super::BINARY)).unwrap();
        pollster::block_on(writer.append(b"0123456789")).unwrap();
        assert_eq!(pollster::block_on(writer.finish()).unwrap(), 10);
        let writer = pollster::block_on(gcs.start_put(&object("b"), super::super::BINARY)).unwrap();
        assert_eq!(pollster::block_on(writer.finish()).unwrap(), 0);
        assert_eq!(
            client.header(1, "content-range").as_deref(),
            Some("bytes 0-9/10")
        );
        assert_eq!(
            client.header(3, "content-range").as_deref(),
            Some("bytes */0")
        );
    }

    #[test]
    fn a_session_that_loses_the_upload_is_an_error_naming_the_object() {
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", "http://127.0.0.1:9/session"),
            answer(404, r#"{"error":{"message":"No such upload"}}"#),
        ]);
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put(&object("big"), super::super::BINARY)).unwrap();
        let e = pollster::block_on(writer.append(&vec![0; UPLOAD_PART_BYTES])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert_eq!(
            e.message(),
            "big in bucket gs://lab: the upload session ended before the object was whole \
             (HTTP 404: No such upload)"
        );
    }

    /// The last part's answer is lost and every retry to the finished session breaks too: a
    /// temporary part (a name only this upload writes) of the right size is this upload, but an
    /// object under its final name may be an older version, so that stays an error.
    #[test]
    fn a_last_part_whose_answers_are_all_lost_is_confirmed_by_size_only_for_a_fresh_name() {
        let script = |size: &str| {
            let mut answers = vec![answer_with(200, "location", "http://127.0.0.1:9/session")];
            answers.extend((0..DEFAULT_ATTEMPTS).map(|_| reset()));
            answers.push(answer(200, &format!(r#"{{"size": "{size}"}}"#)));
            ScriptedClient::new(answers)
        };
        let client = script("5");
        let gcs = store(&client);
        let o = object("tmp/.7.part-0123456789abcdef-body");
        let mut writer = pollster::block_on(gcs.start_put(&o, super::super::BINARY)).unwrap();
        writer.fresh_name = true;
        pollster::block_on(writer.append(b"tiles")).unwrap();
        assert_eq!(pollster::block_on(writer.finish()).unwrap(), 5);

        let client = script("5");
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put(&object("tmp/7"), super::super::BINARY)).unwrap();
        pollster::block_on(writer.append(b"tiles")).unwrap();
        let e = pollster::block_on(writer.finish()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    }

    /// The hidden part name of a prefixed put of `tmp/7`, checked, with its token replaced.
    fn part_name(url: &str, prefix: &str, kind: &str) -> String {
        let rest = url.strip_prefix(prefix).unwrap();
        let (token, tail) = rest.strip_prefix("tmp%2F.7.part-").unwrap().split_at(16);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{url}");
        assert!(tail.starts_with(&format!("-{kind}")), "{url}");
        format!("tmp%2F.7.part-T{tail}")
    }

    #[test]
    fn a_sent_prefixed_object_is_composed_only_when_completed() {
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", "http://127.0.0.1:9/session"),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(204, ""),
            answer(204, ""),
        ]);
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put_with_prefix(&object("tmp/7"), BINARY, 2)).unwrap();
        pollster::block_on(writer.append(b"body")).unwrap();
        let sent = pollster::block_on(writer.send_with_prefix(b"ix")).unwrap();
        // Sending ends with both temporaries up (the session's start, its last part, the
        // prefix): nothing is composed yet, so nothing shows under the name.
        let methods = |client: &ScriptedClient| -> Vec<Method> {
            client
                .sent
                .borrow()
                .iter()
                .map(|r| r.method.clone())
                .collect()
        };
        assert_eq!(methods(&client), [Method::POST, Method::PUT, Method::POST]);
        let finished = pollster::block_on(sent.complete()).unwrap();
        assert_eq!(finished.bytes, 6);
        assert_eq!(
            methods(&client)[3..],
            [Method::POST, Method::DELETE, Method::DELETE]
        );
        assert!(client.sent.borrow()[3].url.ends_with("/o/tmp%2F7/compose"));
    }

    #[test]
    fn prefixed_objects_are_composed_from_two_temporaries_then_deleted() {
        let session = "http://127.0.0.1:9/session";
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", session),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(204, ""),
            // A delete whose first answer was lost finds nothing: fine.
            answer(404, "No such object"),
        ]);
        let gcs = store(&client);
        let o = object("tmp/7");
        let mut writer =
            pollster::block_on(gcs.start_put_with_prefix(&o, super::super::BINARY, 3)).unwrap();
        pollster::block_on(writer.append(b"tiles")).unwrap();
        let finished = pollster::block_on(writer.finish_with_prefix(b"off")).unwrap();
        assert_eq!(finished.bytes, 8);
        assert!(finished.notes.is_empty(), "{:?}", finished.notes);

        let sent = client.sent.borrow();
        let methods: Vec<_> = sent.iter().map(|r| r.method.clone()).collect();
        assert_eq!(
            methods,
            [
                Method::POST,
                Method::PUT,
                Method::POST,
                Method::POST,
                Method::DELETE,
                Method::DELETE
            ]
        );
        let upload = "http://127.0.0.1:9/upload/storage/v1/b/lab/o?uploadType=";
        assert_eq!(
            part_name(&sent[0].url, &format!("{upload}resumable&name="), "body"),
            "tmp%2F.7.part-T-body"
        );
        assert_eq!(sent[1].body, b"tiles");
        assert_eq!(
            part_name(&sent[2].url, &format!("{upload}media&name="), "prefix"),
            "tmp%2F.7.part-T-prefix"
        );
        assert_eq!(sent[2].body, b"off");
        assert_eq!(
            sent[3].url,
            "http://127.0.0.1:9/storage/v1/b/lab/o/tmp%2F7/compose"
        );
        let compose: serde_json::Value = serde_json::from_slice(&sent[3].body).unwrap();
        let names: Vec<_> = compose["sourceObjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names[0].starts_with("tmp/.7.part-") && names[0].ends_with("-prefix"));
        assert_eq!(
            names[1],
            names[0].replace("-prefix", "-body"),
            "prefix first"
        );
        assert_eq!(
            compose["destination"]["contentType"],
            "application/octet-stream"
        );
        let object_url = "http://127.0.0.1:9/storage/v1/b/lab/o/";
        assert_eq!(
            part_name(&sent[4].url, object_url, "prefix"),
            "tmp%2F.7.part-T-prefix"
        );
        assert_eq!(
            part_name(&sent[5].url, object_url, "body"),
            "tmp%2F.7.part-T-body"
        );
    }

    #[test]
    fn a_failed_delete_is_a_note_and_a_failed_compose_an_error() {
        let session = "http://127.0.0.1:9/session";
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", session),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(403, r#"{"error":{"message":"no storage.objects.delete"}}"#),
            answer(204, ""),
            // Second put: compose fails; both temporaries are still deleted.
            answer_with(200, "location", session),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(400, r#"{"error":{"message":"bad compose"}}"#),
            answer(204, ""),
            answer(204, ""),
        ]);
        let gcs = store(&client);
        let o = object("tmp/7");
        let writer =
            pollster::block_on(gcs.start_put_with_prefix(&o, super::super::BINARY, 2)).unwrap();
        let finished = pollster::block_on(writer.finish_with_prefix(b"ab")).unwrap();
        assert_eq!(finished.bytes, 2);
        assert_eq!(finished.notes.len(), 1);
        assert!(
            finished.notes[0].starts_with("temporary object left behind: tmp/.7.part-"),
            "{:?}",
            finished.notes
        );
        assert!(finished.notes[0].contains("no storage.objects.delete"));
        assert!(
            finished.notes[0].contains("permission denied deleting"),
            "{:?}",
            finished.notes
        );

        let writer =
            pollster::block_on(gcs.start_put_with_prefix(&o, super::super::BINARY, 2)).unwrap();
        let e = pollster::block_on(writer.finish_with_prefix(b"ab")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert_eq!(
            e.message(),
            "tmp/7 in bucket gs://lab: writing failed with HTTP 400: bad compose"
        );
        assert_eq!(client.sent.borrow().len(), 12, "both temporaries deleted");
    }

    #[test]
    fn a_last_part_whose_answer_was_lost_is_confirmed_by_the_objects_size() {
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", "http://127.0.0.1:9/session"),
            // The last part reaches GCS, the answer does not; the retry finds the session done.
            reset(),
            answer(404, "Not Found"),
            answer(200, r#"{"name": "a", "size": "10"}"#),
        ]);
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put(&object("a"), super::super::BINARY)).unwrap();
        pollster::block_on(writer.append(b"0123456789")).unwrap();
        assert_eq!(pollster::block_on(writer.finish()).unwrap(), 10);
        assert_eq!(
            client.sent.borrow()[3].url,
            "http://127.0.0.1:9/storage/v1/b/lab/o/a"
        );

        // Not there (or not whole): the session really was lost.
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", "http://127.0.0.1:9/session"),
            answer(404, "Not Found"),
            answer(404, "Not Found"),
        ]);
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put(&object("a"), super::super::BINARY)).unwrap();
        pollster::block_on(writer.append(b"0123456789")).unwrap();
        let e = pollster::block_on(writer.finish()).unwrap_err();
        assert!(e.message().contains("the upload session ended"), "{e}");
    }
}
