//! /proc/PID/fdinfo of a userfaultfd: the features its context was given.

/// The features of the `API:` line (`API:\t<api>:<features>:<ioctls>`, hex), or `None`
/// when the text has no such line or it does not parse.
pub fn features(fdinfo: &str) -> Option<u64> {
    let line = fdinfo.lines().find_map(|l| l.strip_prefix("API:"))?;
    let mut parts = line.trim().split(':');
    let _api = parts.next()?;
    u64::from_str_radix(parts.next()?, 16).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn features_of_the_api_line() {
        let t = "pos:\t0\nflags:\t02004002\nmnt_id:\t15\nino:\t1057\npending:\t0\ntotal:\t0\nAPI:\taa:8000a000:1c00000000\n";
        assert_eq!(super::features(t), Some(0x8000_a000));
        assert_eq!(super::features("pos:\t0\n"), None);
        assert_eq!(super::features("API:\taa:zz:0\n"), None);
    }
}
