// The subscription filter patterns, the same strings as the SAM template's FilterPatterns mapping
// (tests/filter_pattern.rs keeps them equal and checks them against every line in events/lines/).
// CloudWatch Logs term matching is case-sensitive and matches substrings, so these terms pass the
// authenticator's logrus text, JSON and TTY formats and wrapped copies alike.

/** Denials (`access denied`) and aws-auth parse errors: everything a finding or ticket comes from. */
export const DENIALS_ONLY = '?"access denied" ?"Errors parsing configmap" ?"error parsing the config map"';

/** As DENIALS_ONLY plus `access granted`, so the function learns which principals got in before. */
export const WITH_GRANTED = '?"access denied" ?"access granted" ?"Errors parsing configmap" ?"error parsing the config map"';
