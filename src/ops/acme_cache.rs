//! The ACME account and the last certificate, kept under `<state_dir>/acme/<directory>/` so a
//! restart serves the certificate it has instead of ordering a new one (Let's Encrypt limits
//! duplicate certificates to 5 a week), and renewals reuse the account.
//!
//! One folder per directory URL: a staging account or certificate is never used against
//! production. Files are written to a side file and renamed, private ones with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use instant_acme::AccountCredentials;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::acme_plan::Validity;
use crate::config::acme::AcmeConfig;

/// A cache file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("ACME cache {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ACME cache {path}: {message}")]
    Bad { path: PathBuf, message: String },
}

/// A certificate from the cache that covers the configured domains.
pub struct Cached {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub validity: Validity,
}

/// The cache folder for one ACME directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(acme: &AcmeConfig) -> Cache {
        let slug: String = acme
            .directory
            .trim_start_matches("https://")
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
                _ => '_',
            })
            .collect();
        Cache {
            dir: acme.state_dir.join("acme").join(slug),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn account_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("fullchain.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("privkey.pem")
    }

    /// The cached account, `None` when there is none yet.
    pub fn account(&self) -> Result<Option<AccountCredentials>, CacheError> {
        let path = self.account_path();
        let Some(text) = read_if_present(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|err| CacheError::Bad {
                path,
                message: err.to_string(),
            })
    }

    pub fn save_account(&self, credentials: &AccountCredentials) -> Result<(), CacheError> {
        let path = self.account_path();
        let text = serde_json::to_vec(credentials).map_err(|err| CacheError::Bad {
            path: path.clone(),
            message: err.to_string(),
        })?;
        self.write_private(&path, &text)
    }

    /// The cached certificate if it loads and names every one of `domains`.
    pub fn certificate(&self, domains: &[String]) -> Result<Option<Cached>, CacheError> {
        let (cert, key) = (self.cert_path(), self.key_path());
        if read_if_present(&cert)?.is_none() {
            return Ok(None);
        }
        let (chain, key) =
            crate::web::tls::load_pem_files(&cert, &key).map_err(|err| CacheError::Bad {
                path: cert.clone(),
                message: err.to_string(),
            })?;
        let Some((validity, names)) = chain.first().and_then(|der| inspect(der.as_ref())) else {
            return Err(CacheError::Bad {
                path: cert,
                message: "not an X.509 certificate".into(),
            });
        };
        let covers = domains
            .iter()
            .all(|d| names.iter().any(|n| n.eq_ignore_ascii_case(d)));
        Ok(covers.then_some(Cached {
            chain,
            key,
            validity,
        }))
    }

    /// Keeps a newly issued chain and key (key first, so a chain on disk always has its key).
    pub fn save_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<(), CacheError> {
        self.write_private(&self.key_path(), key_pem.as_bytes())?;
        self.write_private(&self.cert_path(), chain_pem.as_bytes())
    }

    fn write_private(&self, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        let io = |source| CacheError::Io {
            path: path.to_path_buf(),
            source,
        };
        create_private_dir(&self.dir).map_err(io)?;
        let tmp = path.with_extension("tmp");
        let mut file = private_file(&tmp).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Validity and DNS names of a DER certificate.
pub fn inspect(der: &[u8]) -> Option<(Validity, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    let validity = Validity {
        not_before: at(cert.validity().not_before.timestamp()),
        not_after: at(cert.validity().not_after.timestamp()),
    };
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some((validity, names))
}

fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, CacheError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CacheError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> AcmeConfig {
        let text = format!(
            "domains = [\"a.test\", \"b.test\"]\ndirectory = \"https://ca.test:14000/dir\"\n\
             state_dir = {dir:?}\n"
        );
        toml::from_str(&text).expect("acme table")
    }

    fn pem_pair(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names).expect("cert");
        (certified.cert.pem(), certified.key_pair.serialize_pem())
    }

    #[test]
    fn a_saved_certificate_comes_back_only_if_it_names_every_domain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(&config(dir.path()));
        let domains = vec!["a.test".to_string(), "b.test".to_string()];
        assert!(cache.certificate(&domains).expect("empty").is_none());
        let (cert, key) = pem_pair(&["a.test", "b.test"]);
        cache.save_certificate(&cert, &key).expect("save");
        let cached = cache.certificate(&domains).expect("read").expect("cached");
        assert!(cached.validity.not_after > cached.validity.not_before);
        let (cert, key) = pem_pair(&["a.test"]);
        cache.save_certificate(&cert, &key).expect("save");
        assert!(cache.certificate(&domains).expect("read").is_none());
    }

    #[test]
    fn the_cache_is_per_directory_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(&config(dir.path()));
        assert_eq!(
            cache.dir(),
            dir.path().join("acme").join("ca.test_14000_dir")
        );
        let (cert, key) = pem_pair(&["a.test"]);
        cache.save_certificate(&cert, &key).expect("save");
        let mode = std::fs::metadata(cache.dir().join("privkey.pem"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_account_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(&config(dir.path()));
        assert!(cache.account().expect("none yet").is_none());
        std::fs::create_dir_all(cache.dir()).expect("dir");
        std::fs::write(cache.dir().join("account.json"), "{").expect("write");
        let err = cache.account().err().expect("damaged");
        assert!(err.to_string().contains("account.json"), "{err}");
    }
}
