//! Where the client commands find their endpoint, region and credentials:
//! the same places, in the same order, as the AWS CLI.
//!
//! * endpoint: `--endpoint-url` > `AWS_ENDPOINT_URL_EC2` > `AWS_ENDPOINT_URL`
//!   > the profile's `endpoint_url`;
//! * region: `--region` > `AWS_REGION` > `AWS_DEFAULT_REGION` > the
//!   profile's `region`;
//! * profile: `--profile` > `AWS_PROFILE` > `default`;
//! * keys: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/
//!   `AWS_SESSION_TOKEN`), else the profile's `aws_access_key_id` /
//!   `aws_secret_access_key` (/ `aws_session_token`) from the shared
//!   credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//!   `~/.aws/credentials`, sections `[name]`), else from the config file
//!   (`AWS_CONFIG_FILE`, default `~/.aws/config`, sections `[profile name]`
//!   and `[default]`). As in the AWS CLI, a profile named with `--profile`
//!   wins over the key variables.
//!
//! The environment is passed in as a lookup function, so that the rules can
//! be tested without touching the process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};

/// What the command line said (each `None` when the flag was not given).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// One set of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// What the resolution found; a part nobody named is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub profile: String,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub credentials: Option<Credentials>,
    /// `AWS_CA_BUNDLE` > the profile's `ca_bundle`: the CAs to trust for an
    /// https endpoint (else the system's bundle).
    pub ca_bundle: Option<PathBuf>,
}

impl Resolved {
    /// The endpoint, or an error saying where one can be given.
    pub fn require_endpoint(&self) -> anyhow::Result<&str> {
        self.endpoint_url.as_deref().ok_or_else(|| {
            anyhow!(
                "no endpoint: pass --endpoint-url, set AWS_ENDPOINT_URL_EC2 or AWS_ENDPOINT_URL, \
                 or set endpoint_url in profile {:?}",
                self.profile
            )
        })
    }

    /// The region, or an error saying where one can be given.
    pub fn require_region(&self) -> anyhow::Result<&str> {
        self.region.as_deref().ok_or_else(|| {
            anyhow!(
                "no region: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, or set region \
                 in profile {:?}",
                self.profile
            )
        })
    }

    /// The keys, or an error saying where they can be given.
    pub fn require_credentials(&self) -> anyhow::Result<&Credentials> {
        self.credentials.as_ref().ok_or_else(|| {
            anyhow!(
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                 aws_access_key_id and aws_secret_access_key in profile {:?} of the shared \
                 credentials or config file",
                self.profile
            )
        })
    }
}

/// `name -> key -> value` of one INI-style AWS file.
type Sections = HashMap<String, HashMap<String, String>>;

/// Parses an AWS config or credentials file. Lines `[section]`,
/// `key = value`, comments (`#`, `;`); indented lines continue a nested
/// block (`s3 =` followed by indented settings), which these commands do not
/// use and skip.
fn parse_ini(text: &str) -> Sections {
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let nested = raw.starts_with([' ', '\t']);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            let name = name.trim().to_string();
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if nested {
            continue;
        }
        let (Some(section), Some((key, value))) = (&current, line.split_once('=')) else {
            continue;
        };
        sections
            .entry(section.clone())
            .or_default()
            .insert(key.trim().to_string(), value.trim().to_string());
    }
    sections
}

fn read_ini(path: &Path) -> anyhow::Result<Sections> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_ini(&text)),
        // A missing file is no profile, as for the AWS CLI.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Sections::new()),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Expands a leading `~` (the AWS CLI accepts `~/…` in these variables).
fn expand_home(path: &str, home: Option<&str>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => Path::new(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Resolves endpoint, region and credentials. `env` answers environment
/// variables (empty values count as unset, as in botocore).
pub fn resolve(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Resolved> {
    let var = |name: &str| env(name).filter(|value| !value.is_empty());
    let home = var("HOME");
    let profile = flags
        .profile
        .clone()
        .or_else(|| var("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_string());

    let config_path = var("AWS_CONFIG_FILE").unwrap_or_else(|| "~/.aws/config".into());
    let credentials_path =
        var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| "~/.aws/credentials".into());
    let config = read_ini(&expand_home(&config_path, home.as_deref()))?;
    let credentials_file = read_ini(&expand_home(&credentials_path, home.as_deref()))?;

    let config_section = if profile == "default" {
        config
            .get("default")
            .or_else(|| config.get("profile default"))
    } else {
        config.get(&format!("profile {profile}"))
    };
    let credentials_section = credentials_file.get(&profile);
    let from_config = |key: &str| {
        config_section
            .and_then(|section| section.get(key))
            .filter(|value| !value.is_empty())
            .cloned()
    };

    // A profile named explicitly that exists nowhere is a mistake; the
    // implicit `default` may be absent (keys from the environment).
    let explicit_profile = flags.profile.is_some() || var("AWS_PROFILE").is_some();
    if explicit_profile && config_section.is_none() && credentials_section.is_none() {
        bail!(
            "the config profile ({profile}) could not be found in {config_path} or {credentials_path}"
        );
    }

    let endpoint_url = flags
        .endpoint_url
        .clone()
        .or_else(|| var("AWS_ENDPOINT_URL_EC2"))
        .or_else(|| var("AWS_ENDPOINT_URL"))
        .or_else(|| from_config("endpoint_url"));
    let region = flags
        .region
        .clone()
        .or_else(|| var("AWS_REGION"))
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .or_else(|| from_config("region"));
    let ca_bundle = var("AWS_CA_BUNDLE")
        .or_else(|| from_config("ca_bundle"))
        .map(|path| expand_home(&path, home.as_deref()));

    let from_env = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => Some(Credentials {
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
        }),
        _ => None,
    };
    let from_section = |section: Option<&HashMap<String, String>>| {
        let section = section?;
        let get = |key: &str| section.get(key).filter(|value| !value.is_empty()).cloned();
        Some(Credentials {
            access_key_id: get("aws_access_key_id")?,
            secret_access_key: get("aws_secret_access_key")?,
            session_token: get("aws_session_token"),
        })
    };
    let from_profile =
        || from_section(credentials_section).or_else(|| from_section(config_section));
    // botocore drops the environment provider when a profile is named on
    // the command line: `--profile x` means that profile's keys.
    let credentials = if flags.profile.is_some() {
        from_profile()
    } else {
        from_env.or_else(from_profile)
    };

    Ok(Resolved {
        profile,
        endpoint_url,
        region,
        credentials,
        ca_bundle,
    })
}

/// [`resolve`] with the process environment.
pub fn resolve_from_process(flags: &Flags) -> anyhow::Result<Resolved> {
    resolve(flags, &|name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new(config: &str, credentials: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("config"), config).unwrap();
            std::fs::write(dir.path().join("credentials"), credentials).unwrap();
            Self { dir }
        }

        fn env(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
            let mut env: HashMap<String, String> = extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let path = |name: &str| self.dir.path().join(name).display().to_string();
            env.entry("AWS_CONFIG_FILE".into())
                .or_insert_with(|| path("config"));
            env.entry("AWS_SHARED_CREDENTIALS_FILE".into())
                .or_insert_with(|| path("credentials"));
            env
        }
    }

    fn run(flags: &Flags, env: &HashMap<String, String>) -> anyhow::Result<Resolved> {
        resolve(flags, &|name| env.get(name).cloned())
    }

    const CONFIG: &str = "\
# comment
[default]
region = eu-west-1
endpoint_url = http://from-default-profile:1

[profile work]
region = us-west-2
endpoint_url = http://from-work-profile:2
s3 =
    max_concurrent_requests = 5
aws_access_key_id = AKIACONFIGWORK
aws_secret_access_key = config-work-secret

[profile cfgonly]
aws_access_key_id = AKIACFGONLY
aws_secret_access_key = cfgonly-secret
aws_session_token = cfgonly-token
";

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret

[work]
aws_access_key_id = AKIAWORK
aws_secret_access_key = work-secret
; a comment
";

    #[test]
    fn flags_beat_environment_beat_profile() {
        let files = Files::new(CONFIG, CREDENTIALS);
        let env = files.env(&[
            ("AWS_ENDPOINT_URL_EC2", "http://ec2-env:3"),
            ("AWS_ENDPOINT_URL", "http://generic-env:4"),
            ("AWS_REGION", "ap-south-1"),
            ("AWS_DEFAULT_REGION", "ca-central-1"),
        ]);
        let flags = Flags {
            endpoint_url: Some("http://flag:5".into()),
            region: Some("sa-east-1".into()),
            profile: None,
        };
        let resolved = run(&flags, &env).unwrap();
        assert_eq!(resolved.endpoint_url.as_deref(), Some("http://flag:5"));
        assert_eq!(resolved.region.as_deref(), Some("sa-east-1"));

        let resolved = run(&Flags::default(), &env).unwrap();
        assert_eq!(resolved.endpoint_url.as_deref(), Some("http://ec2-env:3"));
        assert_eq!(resolved.region.as_deref(), Some("ap-south-1"));

        let mut env = env;
        env.remove("AWS_ENDPOINT_URL_EC2");
        env.remove("AWS_REGION");
        let resolved = run(&Flags::default(), &env).unwrap();
        assert_eq!(
            resolved.endpoint_url.as_deref(),
            Some("http://generic-env:4")
        );
        assert_eq!(resolved.region.as_deref(), Some("ca-central-1"));

        env.remove("AWS_ENDPOINT_URL");
        env.remove("AWS_DEFAULT_REGION");
        let resolved = run(&Flags::default(), &env).unwrap();
        assert_eq!(resolved.profile, "default");
        assert_eq!(
            resolved.endpoint_url.as_deref(),
            Some("http://from-default-profile:1")
        );
        assert_eq!(resolved.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            resolved.credentials.unwrap().access_key_id,
            "AKIADEFAULT",
            "the credentials file's [default]"
        );
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let files = Files::new(CONFIG, CREDENTIALS);
        let env = files.env(&[("AWS_REGION", ""), ("AWS_ACCESS_KEY_ID", "")]);
        let resolved = run(&Flags::default(), &env).unwrap();
        assert_eq!(resolved.region.as_deref(), Some("eu-west-1"));
        assert_eq!(resolved.credentials.unwrap().access_key_id, "AKIADEFAULT");
    }

    #[test]
    fn environment_keys_beat_the_profile_unless_profile_flag() {
        let files = Files::new(CONFIG, CREDENTIALS);
        let env = files.env(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_SESSION_TOKEN", "env-token"),
        ]);
        let resolved = run(&Flags::default(), &env).unwrap();
        assert_eq!(
            resolved.credentials,
            Some(Credentials {
                access_key_id: "AKIAENV".into(),
                secret_access_key: "env-secret".into(),
                session_token: Some("env-token".into()),
            })
        );
        // AWS_PROFILE only picks the profile; the key variables still win.
        let mut with_profile = env.clone();
        with_profile.insert("AWS_PROFILE".into(), "work".into());
        let resolved = run(&Flags::default(), &with_profile).unwrap();
        assert_eq!(resolved.profile, "work");
        assert_eq!(resolved.credentials.unwrap().access_key_id, "AKIAENV");
        assert_eq!(resolved.region.as_deref(), Some("us-west-2"));
        // --profile: that profile's keys.
        let flags = Flags {
            profile: Some("work".into()),
            ..Flags::default()
        };
        let resolved = run(&flags, &env).unwrap();
        assert_eq!(resolved.profile, "work");
        assert_eq!(
            resolved.credentials,
            Some(Credentials {
                access_key_id: "AKIAWORK".into(),
                secret_access_key: "work-secret".into(),
                session_token: None,
            }),
            "the credentials file beats the config file"
        );
        assert_eq!(
            resolved.endpoint_url.as_deref(),
            Some("http://from-work-profile:2")
        );
    }

    #[test]
    fn keys_from_the_config_file_and_missing_profiles() {
        let files = Files::new(CONFIG, CREDENTIALS);
        let env = files.env(&[("AWS_PROFILE", "cfgonly")]);
        let resolved = run(&Flags::default(), &env).unwrap();
        assert_eq!(
            resolved.credentials,
            Some(Credentials {
                access_key_id: "AKIACFGONLY".into(),
                secret_access_key: "cfgonly-secret".into(),
                session_token: Some("cfgonly-token".into()),
            })
        );
        assert_eq!(resolved.region, None);
        assert!(resolved.require_region().is_err());
        assert!(resolved.require_endpoint().is_err());

        let flags = Flags {
            profile: Some("nosuch".into()),
            ..Flags::default()
        };
        let error = run(&flags, &env).unwrap_err().to_string();
        assert!(error.contains("(nosuch) could not be found"), "{error}");
    }

    #[test]
    fn no_files_and_no_variables_resolve_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let env: HashMap<String, String> = [("HOME", dir.path().display().to_string())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let resolved = run(&Flags::default(), &env).unwrap();
        assert_eq!(resolved.credentials, None);
        let error = resolved.require_credentials().unwrap_err().to_string();
        assert!(error.contains("AWS_ACCESS_KEY_ID"), "{error}");
    }

    #[test]
    fn home_relative_paths_are_expanded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(
            dir.path().join(".aws/credentials"),
            "[default]\naws_access_key_id=AKIAHOME\naws_secret_access_key=home-secret\n",
        )
        .unwrap();
        let env: HashMap<String, String> = [("HOME", dir.path().display().to_string())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let resolved = run(&Flags::default(), &env).unwrap();
        assert_eq!(resolved.credentials.unwrap().access_key_id, "AKIAHOME");
    }
}
