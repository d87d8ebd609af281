//! UTC calendar fields from nanoseconds since the epoch, without a time zone
//! database: the embedder's time tokens and the RFC 3339 times in `search`.

/// A UTC instant broken into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u32,
}

/// Splits `time_ns` (may be negative) into UTC calendar fields.
pub fn civil_from_ns(time_ns: i64) -> Civil {
    let secs = time_ns.div_euclid(1_000_000_000);
    let millis = (time_ns.rem_euclid(1_000_000_000) / 1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (sod / 3_600) as u32,
        minute: (sod % 3_600 / 60) as u32,
        second: (sod % 60) as u32,
        millis,
        // 1970-01-01 was a Thursday (3).
        weekday: (days + 3).rem_euclid(7) as u32,
    }
}

impl Civil {
    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn rfc3339(&self) -> String {
        format!("{}T{:02}:{:02}:{:02}.{:03}Z", self.date(), self.hour, self.minute, self.second, self.millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(civil_from_ns(0).rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(civil_from_ns(0).weekday, 3);
        // 2026-11-24T05:19:54.250Z, a Tuesday.
        let c = civil_from_ns(1_795_497_594_250_000_000);
        assert_eq!(c.rfc3339(), "2026-11-24T05:19:54.250Z");
        assert_eq!(c.weekday, 1);
        assert_eq!(civil_from_ns(951_782_400_000_000_000).date(), "2000-02-29");
        assert_eq!(civil_from_ns(-1).rfc3339(), "1969-12-31T23:59:59.999Z");
    }
}
