//! How the console's typed forms read their fields. Every field has a default and none fails to parse, so a form
//! always reaches its handler: the CSRF check comes first, then the handler's own checks answer a bad or missing
//! value with the error page naming the field (as the REST API would), never with a bare extractor rejection.

use serde::{Deserialize, Deserializer};

/// A form that posts only its CSRF token (deleting, logging out).
#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// A team select (`team_id`): 0, empty or not a number mean no team.
pub fn team_choice<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(parse_team(&String::deserialize(deserializer)?))
}

pub fn parse_team(text: &str) -> Option<i64> {
    text.parse().ok().filter(|t| *t != 0)
}

/// A value read with `FromStr`; one that does not parse is absent (the handler says what is missing).
pub fn lenient<'de, D: Deserializer<'de>, T: std::str::FromStr>(deserializer: D) -> Result<Option<T>, D::Error> {
    Ok(String::deserialize(deserializer)?.parse().ok())
}

/// A "confirm" box: ticked only when it posts `yes`.
pub fn ticked_yes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(String::deserialize(deserializer)? == "yes")
}

/// A checkbox: on when it is posted at all (whatever its value).
pub fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    String::deserialize(deserializer).map(|_| true)
}

/// A text area's contents: browsers send CRLF line ends, files on hosts want LF.
pub fn text_file<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(String::deserialize(deserializer)?.replace("\r\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Sample {
        #[serde(default, deserialize_with = "team_choice")]
        team_id: Option<i64>,
        #[serde(default, deserialize_with = "lenient")]
        script_id: Option<i64>,
        #[serde(default, deserialize_with = "ticked_yes")]
        confirm: bool,
        #[serde(default, deserialize_with = "present")]
        critical: bool,
        #[serde(default, deserialize_with = "text_file")]
        contents: String,
    }

    fn sample(team_id: Option<i64>, script_id: Option<i64>, confirm: bool, critical: bool, contents: &str) -> Sample {
        Sample { team_id, script_id, confirm, critical, contents: contents.into() }
    }

    #[test]
    fn fields_read_leniently_and_never_fail() {
        for (body, expected) in [
            ("", sample(None, None, false, false, "")),
            ("team_id=0&script_id=7", sample(None, Some(7), false, false, "")),
            ("team_id=3&script_id=x", sample(Some(3), None, false, false, "")),
            ("team_id=three&script_id=", sample(None, None, false, false, "")),
            ("team_id=%2B3", sample(Some(3), None, false, false, "")),
            ("team_id=+3", sample(None, None, false, false, "")),
            ("confirm=yes&critical=true", sample(None, None, true, true, "")),
            ("confirm=no&critical=", sample(None, None, false, true, "")),
            ("contents=echo+hi%0D%0Aecho+ho%0D%0A", sample(None, None, false, false, "echo hi\necho ho\n")),
            ("unknown=ignored", sample(None, None, false, false, "")),
        ] {
            assert_eq!(serde_urlencoded::from_str::<Sample>(body).unwrap(), expected, "{body}");
        }
    }
}
