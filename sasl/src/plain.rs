//! SASL PLAIN (RFC 4616): one message, `authzid NUL authcid NUL passwd`.

/// Why a PLAIN message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("a PLAIN message is authzid, user name and password separated by NUL bytes")]
    Malformed,
    #[error("the PLAIN user name is empty")]
    EmptyUser,
    #[error("the PLAIN authorization id {authzid:?} is not the user name {user:?}")]
    AuthzidMismatch { authzid: String, user: String },
}

/// The user name and password of a PLAIN message. An authorization id, when given,
/// must be the user name (Kafka does not let one user act as another).
pub fn parse_plain(token: &[u8]) -> Result<(String, Vec<u8>), PlainError> {
    let mut parts = token.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PlainError::Malformed);
    };
    let user = std::str::from_utf8(user).map_err(|_| PlainError::Malformed)?;
    let authzid = std::str::from_utf8(authzid).map_err(|_| PlainError::Malformed)?;
    if user.is_empty() {
        return Err(PlainError::EmptyUser);
    }
    if !authzid.is_empty() && authzid != user {
        return Err(PlainError::AuthzidMismatch {
            authzid: authzid.to_string(),
            user: user.to_string(),
        });
    }
    Ok((user.to_string(), password.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages() {
        assert_eq!(
            parse_plain(b"\0alice\0secret").unwrap(),
            ("alice".into(), b"secret".to_vec())
        );
        assert_eq!(parse_plain(b"alice\0alice\0pw").unwrap().0, "alice");
        assert!(matches!(
            parse_plain(b"bob\0alice\0pw"),
            Err(PlainError::AuthzidMismatch { .. })
        ));
        for bad in [&b""[..], b"alice", b"\0alice", b"\0a\0b\0c", b"\0\0pw"] {
            assert!(parse_plain(bad).is_err(), "{bad:?}");
        }
    }
}
