//! The signed JWT a service account trades for a GCS access token (RS256, RFC 7523 §2.1).
//!
//! Google's JWT-bearer flow (<https://developers.google.com/identity/protocols/oauth2/service-account#httprest>):
//! the header names RS256 and the key id; the claims name the account (`iss`), the scope, the
//! token endpoint (`aud`) and a lifetime of at most an hour; the signature is RSASSA-PKCS1-v1_5
//! over SHA-256 (RFC 7518 §3.3) of `base64url(header) . base64url(claims)`. Only the Spin build
//! needs this: under the native host the host holds the credentials (docs/design.md §2).
//!
//! The key is held as an `rsa` signing key (zeroized on drop) and never appears in a message or
//! a `Debug` output: errors say which field is wrong, never what it holds.

use crate::storage::gcs::GCS_OAUTH_SCOPE;
use crate::{Error, Result};
use base64ct::{Base64UrlUnpadded, Encoding};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer};
use serde::Deserialize;
use std::fmt;

/// Google's OAuth 2.0 token endpoint: the JWT's audience and where it is posted.
pub const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The longest lifetime Google accepts for an assertion, in seconds.
pub const MAX_LIFETIME_SECS: u64 = 3600;

/// What configuration errors name: the Spin variable the key comes from.
const SOURCE: &str = "gcs_service_account_key";

/// The fields of a service-account key file (`gcloud iam service-accounts keys create`) used here.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
}

/// A service account's identity and private key.
pub struct ServiceAccountKey {
    client_email: String,
    private_key_id: Option<String>,
    signing_key: SigningKey<Sha256>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key stays out of every output.
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Parses the JSON of a service-account key file.
    ///
    /// A bad key is a deployment error ([`crate::ErrorKind::Internal`]), reported without any of
    /// the key's contents.
    pub fn from_json(json: &str) -> Result<Self> {
        // serde_json's messages quote offending values, which could be key material: report
        // only where the JSON broke.
        let file: KeyFile = serde_json::from_str(json).map_err(|e| {
            Error::internal(format!(
                "{SOURCE}: not a service-account key file (JSON error at line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(Error::internal(format!(
                "{SOURCE}: expected a key of type \"service_account\", got {kind:?}"
            )));
        }
        let client_email = file
            .client_email
            .filter(|e| !e.is_empty())
            .ok_or_else(|| Error::internal(format!("{SOURCE}: client_email is missing")))?;
        let pem = file
            .private_key
            .ok_or_else(|| Error::internal(format!("{SOURCE}: private_key is missing")))?;
        let signing_key = SigningKey::<Sha256>::from_pkcs8_pem(&pem).map_err(|_| {
            Error::internal(format!(
                "{SOURCE}: private_key is not an RSA private key in PKCS#8 PEM"
            ))
        })?;
        Ok(Self {
            client_email,
            private_key_id: file.private_key_id.filter(|id| !id.is_empty()),
            signing_key,
        })
    }

    /// The account's email, for messages (it is not a secret).
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// A signed assertion for [`GCS_OAUTH_SCOPE`], issued at `now_unix_secs` and valid for
    /// [`MAX_LIFETIME_SECS`].
    pub fn assertion(&self, now_unix_secs: u64) -> Result<String> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(id) = &self.private_key_id {
            // Lets Google pick the right public key at once when the account has several.
            header["kid"] = id.as_str().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": GCS_OAUTH_SCOPE,
            "aud": TOKEN_URL,
            "iat": now_unix_secs,
            "exp": now_unix_secs + MAX_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let signature = self
            .signing_key
            .try_sign(signing_input.as_bytes())
            .map_err(|_| {
                Error::internal(format!(
                    "{SOURCE}: signing the token request for {} failed",
                    self.client_email
                ))
            })?;
        Ok(format!(
            "{signing_input}.{}",
            Base64UrlUnpadded::encode_string(&signature.to_bytes())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::signature::Verifier;
    use rsa::{Generate, PrivateKey};

    /// A fresh key, in a key file as Google issues them.
    fn key_file(private_key: &PrivateKey) -> String {
        let pem = private_key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a generated key encodes");
        serde_json::json!({
            "type": "service_account",
            "project_id": "lab",
            "private_key_id": "0123abcd",
            "private_key": pem.as_str(),
            "client_email": "emwrite@lab.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": TOKEN_URL,
        })
        .to_string()
    }

    fn decode_part(part: &str) -> serde_json::Value {
        let bytes = Base64UrlUnpadded::decode_vec(part).expect("base64url without padding");
        serde_json::from_slice(&bytes).expect("a JSON object")
    }

    #[test]
    fn assertion_has_googles_header_and_claims_and_a_signature_that_verifies() {
        let private_key = PrivateKey::generate();
        let key = ServiceAccountKey::from_json(&key_file(&private_key)).unwrap();
        assert_eq!(key.client_email(), "emwrite@lab.iam.gserviceaccount.com");

        let jwt = key.assertion(1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{jwt}");
        assert_eq!(
            decode_part(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "0123abcd"})
        );
        assert_eq!(
            decode_part(parts[1]),
            serde_json::json!({
                "iss": "emwrite@lab.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/devstorage.read_write",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000,
                "exp": 1_700_003_600,
            })
        );

        let signature_bytes = Base64UrlUnpadded::decode_vec(parts[2]).unwrap();
        let signature = Signature::try_from(signature_bytes.as_slice()).unwrap();
        let verifier = VerifyingKey::<Sha256>::new(private_key.to_public_key());
        let signed = format!("{}.{}", parts[0], parts[1]);
        verifier.verify(signed.as_bytes(), &signature).unwrap();
        // The signature covers the claims: another expiry does not verify.
        let tampered = format!(
            "{}.{}",
            parts[0],
            Base64UrlUnpadded::encode_string(br#"{"exp":9999999999}"#)
        );
        assert!(verifier.verify(tampered.as_bytes(), &signature).is_err());
    }

    #[test]
    fn a_key_without_an_id_sends_no_kid() {
        let mut file: serde_json::Value =
            serde_json::from_str(&key_file(&PrivateKey::generate())).unwrap();
        file.as_object_mut().unwrap().remove("private_key_id");
        let key = ServiceAccountKey::from_json(&file.to_string()).unwrap();
        let jwt = key.assertion(0).unwrap();
        let header = decode_part(jwt.split('.').next().unwrap());
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT"}));
    }

    #[test]
    fn bad_keys_are_named_without_their_contents() {
        let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        let cases = [
            (
                "{\"private_key\": 5",
                "not a service-account key file (JSON error at line 1",
            ),
            (
                r#"{"type": "authorized_user", "client_email": "a@b", "private_key": "x"}"#,
                "expected a key of type \"service_account\", got \"authorized_user\"",
            ),
            (r#"{"private_key": "x"}"#, "client_email is missing"),
            (r#"{"client_email": "a@b"}"#, "private_key is missing"),
            (
                &serde_json::json!({"client_email": "a@b", "private_key": secret}).to_string(),
                "private_key is not an RSA private key in PKCS#8 PEM",
            ),
        ];
        for (json, expected) in cases {
            let e = ServiceAccountKey::from_json(json).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Internal);
            assert!(e.message().starts_with("gcs_service_account_key: "), "{e}");
            assert!(e.message().contains(expected), "{json}: {e}");
            assert!(!e.message().contains("c2VjcmV0"), "{e}");
        }
    }

    #[test]
    fn debug_shows_the_account_but_not_the_key() {
        let private_key = PrivateKey::generate();
        let file = key_file(&private_key);
        let key = ServiceAccountKey::from_json(&file).unwrap();
        let debug = format!("{key:?}");
        assert!(
            debug.contains("emwrite@lab.iam.gserviceaccount.com"),
            "{debug}"
        );
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }
}
