//! EC2 Query parameters: a flat, case-sensitive map of `Name.1.Sub=value`
//! pairs, read through typed accessors that remember what was read, so that
//! anything left over is reported as `UnknownParameter`.
//!
//! Lists are `Name.N` with N counting from 1; indices may be sparse and
//! arrive in any order, and are read back in numeric order.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::error::ProtocolError;

/// Upper bounds on what one request may carry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_parameters: usize,
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_parameters: 20_000,
            max_value_bytes: 256 * 1024,
        }
    }
}

#[derive(Debug)]
pub struct Params {
    values: BTreeMap<String, String>,
    consumed: RefCell<BTreeSet<String>>,
}

/// The `X-Amz-*` parameters of a presigned request belong to authentication,
/// not to the action.
fn is_auth_parameter(name: &str) -> bool {
    name.starts_with("X-Amz-")
}

impl Params {
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
        limits: Limits,
    ) -> Result<Self, ProtocolError> {
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            if is_auth_parameter(&name) {
                continue;
            }
            if name.is_empty() {
                return Err(ProtocolError::MalformedQueryString(
                    "empty parameter name".into(),
                ));
            }
            if value.len() > limits.max_value_bytes {
                return Err(ProtocolError::InvalidParameterValue(format!(
                    "The value of parameter {name} is longer than {} bytes",
                    limits.max_value_bytes
                )));
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(ProtocolError::InvalidParameterValue(format!(
                    "The parameter {name} was given more than once"
                )));
            }
            if values.len() > limits.max_parameters {
                return Err(ProtocolError::InvalidParameterValue(format!(
                    "The request has more than {} parameters",
                    limits.max_parameters
                )));
            }
        }
        Ok(Self {
            values,
            consumed: RefCell::new(BTreeSet::new()),
        })
    }

    /// Parses an `application/x-www-form-urlencoded` body or query string.
    pub fn from_form(form: &[u8], limits: Limits) -> Result<Self, ProtocolError> {
        Self::from_pairs(
            form_urlencoded::parse(form)
                .map(|(name, value)| (name.into_owned(), value.into_owned())),
            limits,
        )
    }

    pub fn root(&self) -> View<'_> {
        View {
            params: self,
            prefix: String::new(),
        }
    }

    /// Fails with `UnknownParameter` naming the first parameter no accessor read.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        let consumed = self.consumed.borrow();
        match self.values.keys().find(|name| !consumed.contains(*name)) {
            Some(name) => Err(ProtocolError::UnknownParameter(name.clone())),
            None => Ok(()),
        }
    }

    fn take(&self, name: &str) -> Option<&str> {
        let value = self.values.get(name)?;
        self.consumed.borrow_mut().insert(name.to_string());
        Some(value.as_str())
    }

    /// The distinct list indices present under `prefix` (`Filter.` gives the
    /// N of every `Filter.N...`), in numeric order.
    fn indices(&self, prefix: &str) -> Result<Vec<u32>, ProtocolError> {
        let mut indices = BTreeSet::new();
        for name in self
            .values
            .range(prefix.to_string()..)
            .map(|(name, _)| name)
            .take_while(|name| name.starts_with(prefix))
        {
            let rest = &name[prefix.len()..];
            let digits = rest.split('.').next().unwrap_or_default();
            match digits.parse::<u32>() {
                Ok(index) if index >= 1 && !digits.starts_with('0') => {
                    indices.insert(index);
                }
                _ => return Err(ProtocolError::UnknownParameter(name.clone())),
            }
        }
        Ok(indices.into_iter().collect())
    }
}

/// A position in the parameter tree: the root, or one member of a list.
#[derive(Debug, Clone)]
pub struct View<'a> {
    params: &'a Params,
    prefix: String,
}

impl<'a> View<'a> {
    fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.params.take(&self.key(name)).map(str::to_string)
    }

    pub fn required(&self, name: &str) -> Result<String, ProtocolError> {
        match self.string(name) {
            Some(value) => Ok(value),
            None => Err(ProtocolError::MissingParameter(self.key(name))),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ProtocolError> {
        match self.string(name).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ProtocolError::InvalidParameterValue(format!(
                "Value ({other}) for parameter {} is invalid. Expected: 'true' or 'false'.",
                self.key(name)
            ))),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ProtocolError> {
        match self.string(name) {
            None => Ok(None),
            Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
                ProtocolError::InvalidParameterValue(format!(
                    "Value ({text}) for parameter {} is invalid. Expected an integer.",
                    self.key(name)
                ))
            }),
        }
    }

    /// A struct member: `Name.Sub...`.
    pub fn member(&self, name: &str) -> View<'a> {
        View {
            params: self.params,
            prefix: format!("{}{}.", self.prefix, name),
        }
    }

    /// True when any parameter lies under this member.
    pub fn present(&self, name: &str) -> bool {
        let exact = self.key(name);
        let nested = format!("{exact}.");
        self.params.values.contains_key(&exact)
            || self
                .params
                .values
                .range(nested.clone()..)
                .next()
                .is_some_and(|(key, _)| key.starts_with(&nested))
    }

    /// A list of scalars: `Name.1`, `Name.2`, ...
    pub fn strings(&self, name: &str) -> Result<Vec<String>, ProtocolError> {
        let prefix = self.key(&format!("{name}."));
        let mut values = Vec::new();
        for index in self.params.indices(&prefix)? {
            let key = format!("{prefix}{index}");
            match self.params.take(&key) {
                Some(value) => values.push(value.to_string()),
                None => {
                    // Something like `Name.1.Extra`, which a scalar list never has.
                    let stray = self
                        .params
                        .values
                        .range(key.clone()..)
                        .next()
                        .map(|(name, _)| name.clone())
                        .unwrap_or(key);
                    return Err(ProtocolError::UnknownParameter(stray));
                }
            }
        }
        Ok(values)
    }

    /// A list of structures: one view per `Name.N.`.
    pub fn structs(&self, name: &str) -> Result<Vec<View<'a>>, ProtocolError> {
        let prefix = self.key(&format!("{name}."));
        Ok(self
            .params
            .indices(&prefix)?
            .into_iter()
            .map(|index| View {
                params: self.params,
                prefix: format!("{prefix}{index}."),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(form: &str) -> Params {
        Params::from_form(form.as_bytes(), Limits::default()).unwrap()
    }

    #[test]
    fn sparse_lists_read_in_numeric_order() {
        let params = parsed("ImageId.10=c&ImageId.2=b&ImageId.1=a");
        assert_eq!(
            params.root().strings("ImageId").unwrap(),
            vec!["a", "b", "c"]
        );
        params.finish().unwrap();
    }

    #[test]
    fn nested_structures() {
        let params = parsed(
            "Filter.1.Name=name&Filter.1.Value.1=x&Filter.1.Value.2=y&Filter.2.Name=state&Filter.2.Value.1=available",
        );
        let filters = params.root().structs("Filter").unwrap();
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[0].required("Name").unwrap(), "name");
        assert_eq!(filters[0].strings("Value").unwrap(), vec!["x", "y"]);
        assert_eq!(filters[1].strings("Value").unwrap(), vec!["available"]);
        filters[1].required("Name").unwrap();
        params.finish().unwrap();
    }

    #[test]
    fn leftovers_are_unknown() {
        let params = parsed("ImageId.1=a&Bogus=1");
        params.root().strings("ImageId").unwrap();
        assert_eq!(
            params.finish(),
            Err(ProtocolError::UnknownParameter("Bogus".into()))
        );
    }

    #[test]
    fn names_are_case_sensitive() {
        let params = parsed("imageId.1=a");
        assert!(params.root().strings("ImageId").unwrap().is_empty());
        assert!(params.finish().is_err());
    }

    #[test]
    fn bad_indices_and_values() {
        let params = parsed("ImageId.0=a");
        assert!(params.root().strings("ImageId").is_err());
        let params = parsed("ImageId.x=a");
        assert!(params.root().strings("ImageId").is_err());
        let params = parsed("DryRun=yes");
        assert!(params.root().bool("DryRun").is_err());
        let params = parsed("MaxResults=ten");
        assert!(params.root().int("MaxResults").is_err());
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_parameters: 2,
            max_value_bytes: 4,
        };
        assert!(Params::from_form(b"a=1&b=2&c=3", limits).is_err());
        assert!(Params::from_form(b"a=12345", limits).is_err());
        assert!(Params::from_form(b"a=1&a=2", Limits::default()).is_err());
    }

    #[test]
    fn auth_parameters_are_skipped() {
        let params = parsed("Action=X&X-Amz-Signature=abc");
        params.root().required("Action").unwrap();
        params.finish().unwrap();
    }
}
