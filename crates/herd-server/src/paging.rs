//! The paging parameters of every listing, REST and console alike: one parse, one cap on `per_page`, and
//! arithmetic that cannot overflow (an unchecked `page * per_page` wraps to page 1 in a release build, or
//! sends PostgreSQL a negative OFFSET).

use crate::error::ApiError;
use std::collections::HashMap;

/// Rows per page when the request does not say.
pub const DEFAULT_PER_PAGE: i64 = 100;
/// Most rows one page may ask for, on every listing.
pub const MAX_PER_PAGE: i64 = 10_000;

/// A checked page: `page` ≥ 0, `per_page` in 1..=[`MAX_PER_PAGE`], and the page's rows (plus the one extra
/// row that tells whether there is a next page) addressable without overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    page: i64,
    per_page: i64,
}

impl Default for Page {
    fn default() -> Self {
        Page { page: 0, per_page: DEFAULT_PER_PAGE }
    }
}

impl Page {
    /// Checks a page number and size; the 422 names the parameter at fault.
    pub fn new(page: i64, per_page: i64) -> Result<Page, ApiError> {
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ApiError::invalid("per_page", format!("must be between 1 and {MAX_PER_PAGE}")));
        }
        if page < 0 {
            return Err(ApiError::invalid("page", "must not be negative"));
        }
        // The last row asked for (with the look-ahead row) must be a number.
        if page.checked_mul(per_page).and_then(|offset| offset.checked_add(per_page + 1)).is_none() {
            return Err(ApiError::invalid("page", "is too large"));
        }
        Ok(Page { page, per_page })
    }

    /// `page` and `per_page` from a query string (absent: the first page of `default_per_page` rows).
    pub fn from_params(params: &HashMap<String, String>, default_per_page: i64) -> Result<Page, ApiError> {
        let number = |name: &str, default: i64| -> Result<i64, ApiError> {
            match params.get(name).map(|v| v.trim()) {
                None | Some("") => Ok(default),
                Some(v) => v.parse::<i64>().map_err(|_| {
                    ApiError::invalid(name, format!("must be a whole number (at most {}), not {v:?}", i64::MAX))
                }),
            }
        };
        Page::new(number("page", 0)?, number("per_page", default_per_page)?)
    }

    pub fn page(self) -> i64 {
        self.page
    }

    pub fn per_page(self) -> i64 {
        self.per_page
    }

    /// Rows before this page (cannot overflow: checked when the page was made).
    pub fn offset(self) -> i64 {
        self.page * self.per_page
    }

    /// Whether rows remain after this page, out of `total`.
    pub fn has_next(self, total: i64) -> bool {
        self.offset() + self.per_page < total
    }

    pub fn has_previous(self) -> bool {
        self.page > 0
    }

    /// The same page within a list held in memory (`offset..offset+per_page`, clipped to `len`).
    pub fn range(self, len: usize) -> std::ops::Range<usize> {
        let start = usize::try_from(self.offset()).unwrap_or(usize::MAX).min(len);
        let end = start.saturating_add(self.per_page as usize).min(len);
        start..end
    }
}

/// A query parameter that must be an integer when present.
pub fn integer_param(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|v| v.trim().parse::<i64>().map_err(|_| ApiError::invalid(name, format!("must be an integer, not {v:?}"))))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn field_of(result: Result<Page, ApiError>) -> String {
        match result {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn pages_are_checked_and_name_the_parameter() {
        assert_eq!(Page::from_params(&params(&[]), 50).unwrap(), Page { page: 0, per_page: 50 });
        let page = Page::from_params(&params(&[("page", "3"), ("per_page", "20")]), 50).unwrap();
        assert_eq!((page.offset(), page.has_previous(), page.has_next(80), page.has_next(81)), (60, true, false, true));
        let largest = Page::new(i64::MAX / MAX_PER_PAGE - 1, MAX_PER_PAGE).unwrap();
        assert!(largest.offset() > 0);
        for (pairs, field) in [
            (&[("page", "9223372036854775808")][..], "page"),
            (&[("page", "9223372036854775807")][..], "page"),
            (&[("page", "92233720368547758"), ("per_page", "1000")][..], "page"),
            (&[("page", "-1")][..], "page"),
            (&[("page", "two")][..], "page"),
            (&[("per_page", "0")][..], "per_page"),
            (&[("per_page", "10001")][..], "per_page"),
            (&[("per_page", "-5")][..], "per_page"),
        ] {
            assert_eq!(field_of(Page::from_params(&params(pairs), 100)), field, "{pairs:?}");
        }
    }

    #[test]
    fn ranges_over_lists_in_memory() {
        assert_eq!(Page::new(0, 10).unwrap().range(25), 0..10);
        assert_eq!(Page::new(2, 10).unwrap().range(25), 20..25);
        assert_eq!(Page::new(7, 10).unwrap().range(25), 25..25);
        assert_eq!(Page::new(i64::MAX / 10_000 - 1, 10_000).unwrap().range(25), 25..25);
    }
}
