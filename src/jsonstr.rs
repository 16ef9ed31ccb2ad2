//! Decoding the body of a JSON string for the subscription fast path (`event`), and finding the
//! end of a quoted logfmt value (`authlog`).
//!
//! A CloudWatch message holds about twenty escaped quotes (logfmt's `"` become `\"`), so a search
//! that restarts after each one spends more time starting than searching. On x86_64 (SSE2) and
//! aarch64 (NEON), both part of their baseline, the quotes and backslashes of 16 bytes at a time
//! come out of one vector compare as a mask, and the text between them is copied 16 bytes at a
//! time. Elsewhere `memchr2` finds them one by one.

/// Decodes the JSON string body of `s` starting at `i` (just after the opening quote) onto the end
/// of `out`; returns the index after the closing quote. `None` for an escape the fast path leaves
/// to serde_json (a surrogate, an unknown escape) or a text that ends first; `out` then holds a
/// part of the string.
pub(crate) fn unescape_into(s: &str, i: usize, out: &mut String) -> Option<usize> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    return blocks::unescape_into(s, i, out);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return unescape_tail(s, i, i, out);
}

/// The end of the JSON string body of `s` starting at `i`, found without decoding it: the index
/// of its closing quote, and whether the body holds an escape. `None` exactly where
/// [`unescape_into`] gives `None`, so a body this accepts always decodes.
pub(crate) fn skip(s: &str, i: usize) -> Option<(usize, bool)> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    return blocks::skip(s, i);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return skip_tail(s, i, false);
}

/// The portable loop of [`skip`], from `i`; `escaped` tells whether an escape came before.
fn skip_tail(s: &str, mut i: usize, mut escaped: bool) -> Option<(usize, bool)> {
    let b = s.as_bytes();
    loop {
        let at = find_special(b, i)?;
        if b[at] == b'"' {
            return Some((at, escaped));
        }
        escaped = true;
        i = escape(s, at)?.0;
    }
}

/// The first quote or backslash in `b` at or after `from`. For the short values of a log line a
/// `memchr2` call costs more in setting up than in searching.
#[inline]
pub(crate) fn find_special(b: &[u8], mut from: usize) -> Option<usize> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        while let Some(block) = b.get(from..from + 16) {
            let m = blocks::specials(block.try_into().ok()?);
            if m != 0 {
                return Some(from + blocks::first(m));
            }
            from += 16;
        }
        // Fewer than 16 bytes left.
        b.get(from..)?
            .iter()
            .position(|&c| c == b'"' || c == b'\\')
            .map(|i| from + i)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    memchr::memchr2(b'"', b'\\', b.get(from..)?).map(|i| from + i)
}

/// The portable loop: decodes from `i`; `s[run..i]` is text still to be copied as it is.
fn unescape_tail(s: &str, mut i: usize, mut run: usize, out: &mut String) -> Option<usize> {
    let b = s.as_bytes();
    loop {
        let at = find_special(b, i)?;
        out.push_str(&s[run..at]);
        if b[at] == b'"' {
            return Some(at + 1);
        }
        let (next, decoded) = escape(s, at)?;
        match decoded {
            // The escaped byte stands for itself: it starts the next run (no push of its own for
            // the common `\"`), and the search resumes after it.
            None => run = at + 1,
            Some(c) => {
                out.push(c);
                run = next;
            }
        }
        i = next;
    }
}

/// The escape whose backslash is at `at`: the index after it, and the character it stands for
/// (`None` when that is the escaped byte itself: `\"`, `\\`, `\/`).
#[inline(always)]
fn escape(s: &str, at: usize) -> Option<(usize, Option<char>)> {
    match *s.as_bytes().get(at + 1)? {
        b'"' | b'\\' | b'/' => Some((at + 2, None)),
        _ => escape_char(s, at),
    }
}

/// The escapes that stand for another character: rare in log lines, so kept out of the loops.
#[inline(never)]
fn escape_char(s: &str, at: usize) -> Option<(usize, Option<char>)> {
    let c = match *s.as_bytes().get(at + 1)? {
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hex = s.get(at + 2..at + 6)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            // None for surrogates: serde_json decides about those.
            let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
            return Some((at + 6, Some(c)));
        }
        _ => return None,
    };
    Some((at + 2, Some(c)))
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod blocks {
    /// Bytes read past a block's end, at most, by [`push_run`]'s 16-byte copies.
    const SLACK: usize = 16;

    pub(super) fn unescape_into(s: &str, mut i: usize, out: &mut String) -> Option<usize> {
        let b = s.as_bytes();
        let mut run = i;
        'blocks: while i + 16 + SLACK <= b.len() {
            let block: &[u8; 16] = b[i..i + 16].try_into().ok()?;
            let mut m = specials(block);
            while m != 0 {
                let k = first(m);
                let at = i + k;
                push_run(out, s, run, at);
                if block[k] == b'"' {
                    return Some(at + 1);
                }
                let (next, decoded) = super::escape(s, at)?;
                match decoded {
                    None => run = at + 1,
                    Some(c) => {
                        out.push(c);
                        run = next;
                    }
                }
                if next > i + 16 || decoded.is_some() {
                    // The escape reaches past this block (or `\u`'s digits sit in it): go on
                    // from the byte after it.
                    i = next;
                    continue 'blocks;
                }
                // The escaped byte is in this block: it is text, not a special.
                m = clear_through(m, k + 1);
            }
            i += 16;
        }
        super::unescape_tail(s, i, run, out)
    }

    /// [`super::skip`] 64 bytes at a time, without stopping at each escape: which quotes are
    /// escaped follows from the runs of backslashes before them, found with bit arithmetic on
    /// the block's masks (simdjson's method). Only escapes of other bytes than `"` and `\\`
    /// (rare in log lines) are looked at one by one, to check them as decoding would.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn skip(s: &str, mut i: usize) -> Option<(usize, bool)> {
        const EVEN: u64 = 0x5555_5555_5555_5555;
        let b = s.as_bytes();
        let mut any = false;
        // 1 when this block's first byte is escaped by a backslash that ended the one before.
        let mut carried = 0u64;
        while let Some(block) = b.get(i..i + 64) {
            let block: &[u8; 64] = block.try_into().ok()?;
            let (quotes, backslashes) = masks64(block);
            let starts = backslashes & !carried;
            let follows = (starts << 1) | carried;
            let odd_starts = starts & !EVEN & !follows;
            let (even_runs, overflow) = odd_starts.overflowing_add(starts);
            // The bytes an odd run of backslashes escapes, and every second backslash of a run.
            let escaped = (EVEN ^ (even_runs << 1)) & follows;
            let closing = quotes & !escaped;
            let inside = if closing == 0 {
                u64::MAX
            } else {
                (1u64 << closing.trailing_zeros()) - 1
            };
            any |= backslashes & inside != 0;
            // Escapes of other bytes: each checked as decoding checks it.
            let mut letters = escaped & !(quotes | backslashes) & inside;
            while letters != 0 {
                let k = letters.trailing_zeros() as usize;
                super::escape(s, (i + k).checked_sub(1)?)?;
                letters &= letters - 1;
            }
            if closing != 0 {
                return Some((i + closing.trailing_zeros() as usize, any));
            }
            carried = u64::from(overflow);
            i += 64;
        }
        if carried != 0 {
            // The rest starts with the byte the last backslash escapes.
            i = super::escape(s, i - 1)?.0;
        }
        skip16(s, i, any)
    }

    /// Which bytes of a 64-byte block are quotes and which backslashes (bit k: byte k).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn masks64(block: &[u8; 64]) -> (u64, u64) {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        let (mut quotes, mut backslashes) = (0u64, 0u64);
        for (n, part) in block.chunks_exact(16).enumerate() {
            // SAFETY: SSE2 is part of the x86_64 baseline; the load reads the 16 bytes of `part`.
            let (q, bs) = unsafe {
                let v = _mm_loadu_si128(part.as_ptr().cast::<__m128i>());
                (
                    _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))) as u16,
                    _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8))) as u16,
                )
            };
            quotes |= u64::from(q) << (16 * n);
            backslashes |= u64::from(bs) << (16 * n);
        }
        (quotes, backslashes)
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn skip(s: &str, i: usize) -> Option<(usize, bool)> {
        skip16(s, i, false)
    }

    /// [`super::skip`] 16 bytes at a time, stopping at each escape; `escaped` as in
    /// [`super::skip_tail`].
    fn skip16(s: &str, mut i: usize, mut escaped: bool) -> Option<(usize, bool)> {
        let b = s.as_bytes();
        'blocks: while let Some(block) = b.get(i..i + 16) {
            let block: &[u8; 16] = block.try_into().ok()?;
            let mut m = specials(block);
            while m != 0 {
                let k = first(m);
                if block[k] == b'"' {
                    return Some((i + k, escaped));
                }
                escaped = true;
                let next = super::escape(s, i + k)?.0;
                if next > i + 16 {
                    i = next;
                    continue 'blocks;
                }
                // What the escape spans is text (`\u`'s digits are hex), not specials.
                m = clear_through(m, next - 1 - i);
            }
            i += 16;
        }
        super::skip_tail(s, i, escaped)
    }

    /// Bits per byte in a [`specials`] mask.
    #[cfg(target_arch = "x86_64")]
    const BITS: u32 = 1;
    #[cfg(target_arch = "aarch64")]
    const BITS: u32 = 4;

    /// Which bytes of `block` are a quote or a backslash: byte k is bit k (SSE2's movemask).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn specials(block: &[u8; 16]) -> u64 {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of the x86_64 baseline; the load reads the 16 bytes of `block`.
        unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let quotes = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslashes = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            u64::from(_mm_movemask_epi8(_mm_or_si128(quotes, backslashes)) as u16)
        }
    }

    /// Which bytes of `block` are a quote or a backslash: byte k is bits 4k..4k+4 (NEON has no
    /// movemask; narrowing each 16-bit lane by 4 bits keeps a nibble per byte).
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    pub(super) fn specials(block: &[u8; 16]) -> u64 {
        use std::arch::aarch64::{
            vceqq_u8, vdupq_n_u8, vget_lane_u64, vld1q_u8, vorrq_u8, vreinterpret_u64_u8,
            vreinterpretq_u16_u8, vshrn_n_u16,
        };
        // SAFETY: NEON is part of the aarch64 baseline; the load reads the 16 bytes of `block`.
        unsafe {
            let v = vld1q_u8(block.as_ptr());
            let quotes = vceqq_u8(v, vdupq_n_u8(b'"'));
            let backslashes = vceqq_u8(v, vdupq_n_u8(b'\\'));
            let nibbles = vshrn_n_u16::<4>(vreinterpretq_u16_u8(vorrq_u8(quotes, backslashes)));
            vget_lane_u64::<0>(vreinterpret_u64_u8(nibbles))
        }
    }

    /// The first byte a non-zero mask marks.
    #[inline(always)]
    pub(super) fn first(m: u64) -> usize {
        (m.trailing_zeros() / BITS) as usize
    }

    /// The mask without bytes 0 to `k`.
    #[inline(always)]
    fn clear_through(m: u64, k: usize) -> u64 {
        let bits = (k as u32 + 1) * BITS;
        m & u64::MAX.checked_shl(bits).unwrap_or(0)
    }

    /// Appends `s[run..end]` to `out` in 16-byte copies (what a `memcpy` call costs for these
    /// short runs is most of the copy). The caller guarantees `end + SLACK <= s.len()`.
    #[inline(always)]
    fn push_run(out: &mut String, s: &str, run: usize, end: usize) {
        let len = end - run;
        let src = s.as_bytes();
        // Both ends sit next to ASCII bytes (a quote, a backslash or an escaped byte), so the
        // slice is whole characters. The copies below rely on that and on the bounds: both are
        // checked here, whoever the caller.
        assert!(run <= end && end + SLACK <= src.len());
        assert!(s.is_char_boundary(run) && s.is_char_boundary(end));
        out.reserve(len + 16);
        // SAFETY: every 16-byte read starts below `end` and so ends below `end + 16 <= s.len()`;
        // every write starts below `len` past the old length and so ends within the capacity
        // just reserved; `out` and `s` are different buffers (`&mut` and `&`). `s[run..end]` is
        // valid UTF-8 (whole characters of a `str`), and only its `len` bytes are added to the
        // length, so `out` stays valid UTF-8.
        unsafe {
            let v = out.as_mut_vec();
            let dst = v.as_mut_ptr().add(v.len());
            let from = src.as_ptr().add(run);
            let mut c = 0;
            while c < len {
                // A fixed 16 bytes: one vector load and store, no call.
                std::ptr::copy_nonoverlapping(from.add(c), dst.add(c), 16);
                c += 16;
            }
            v.set_len(v.len() + len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What serde_json makes of the string at the start of `body` (the text after the opening
    /// quote), with the index after its closing quote.
    fn reference(body: &str) -> Option<(String, usize)> {
        let quoted = format!("\"{body}");
        let mut stream = serde_json::Deserializer::from_str(&quoted).into_iter::<String>();
        let v = stream.next()?.ok()?;
        Some((v, stream.byte_offset() - 1))
    }

    fn decode(s: &str) -> Option<(String, usize)> {
        let mut out = String::from("prefix:");
        let end = unescape_into(s, 0, &mut out)?;
        Some((out["prefix:".len()..].to_string(), end))
    }

    fn portable(s: &str) -> Option<(String, usize)> {
        let mut out = String::new();
        let end = unescape_tail(s, 0, 0, &mut out)?;
        Some((out, end))
    }

    #[test]
    fn decodes_the_escapes_json_allows() {
        let pad = "x".repeat(40);
        for (body, want) in [
            (r#"plain""#, "plain"),
            (r#"a\"b\\c\/d""#, r#"a"b\c/d"#),
            (r#"\b\f\n\r\t""#, "\u{8}\u{c}\n\r\t"),
            (r#"\u00e9\u0041""#, "éA"),
            (r#"é ü 日本 \"ok\"""#, "é ü 日本 \"ok\""),
            (r#"""#, ""),
        ] {
            for (body, want) in [
                (body.to_string(), want.to_string()),
                (format!("{pad}{body}{pad}"), format!("{pad}{want}")),
            ] {
                let (got, end) = decode(&body).unwrap();
                assert_eq!(got, want, "{body}");
                assert_eq!(&body[end - 1..end], "\"", "{body}");
                assert_eq!(Some((got, end)), reference(&body), "{body}");
            }
        }
    }

    #[test]
    fn leaves_to_serde_json_what_the_fast_path_does_not_take() {
        let pad = "y".repeat(40);
        for body in [
            r#"\ud83d\ude00""#,
            r#"\x41""#,
            r#"\u12""#,
            "no end",
            r#"ends \"#,
        ] {
            assert_eq!(decode(body), None, "{body}");
            assert_eq!(decode(&format!("{pad}{body}")), None, "{body}");
        }
    }

    #[test]
    fn escapes_on_every_block_boundary() {
        // An escape whose backslash ends one 16-byte block and whose byte starts the next.
        for at in 0..48 {
            for esc in [r#"\""#, r#"\\"#, r"\n", r"\u0041", r"\/"] {
                let body = format!(
                    "{}{esc}{}\"{}",
                    "a".repeat(at),
                    "b".repeat(20),
                    "c".repeat(40)
                );
                assert_eq!(decode(&body), reference(&body), "{body}");
                assert_eq!(decode(&body), portable(&body), "{body}");
                assert_eq!(skip(&body, 0), skipped(&body), "{body}");
                assert_eq!(skip_tail(&body, 0, false), skipped(&body), "{body}");
            }
        }
    }

    #[test]
    fn find_special_finds_the_first_quote_or_backslash() {
        for len in 0..70 {
            for at in 0..=len {
                let mut b = vec![b'a'; len];
                if at < len {
                    b[at] = if at % 2 == 0 { b'"' } else { b'\\' };
                }
                for from in 0..=len + 1 {
                    let want = (at < len && from <= at).then_some(at);
                    assert_eq!(
                        find_special(&b, from),
                        want,
                        "len {len} at {at} from {from}"
                    );
                }
            }
        }
    }

    /// What [`skip`] must give: where decoding ends, and whether the body had an escape.
    fn skipped(s: &str) -> Option<(usize, bool)> {
        decode(s).map(|(_, end)| (end - 1, s[..end - 1].contains('\\')))
    }

    #[test]
    fn skip_handles_backslash_runs_across_blocks() {
        // Runs of 1 to 6 backslashes ending at every offset around the 64- and 128-byte block
        // ends, followed by a quote (escaped or closing after an even run), a letter escape or
        // a `\u` escape cut by the block end.
        for len in 1..=6 {
            for at in 40..140 {
                for next in ["\"", "n\"", "u0041\"", "\\\"", "q\""] {
                    let body = format!(
                        "{}{}{next}{}\"",
                        "a".repeat(at),
                        "\\".repeat(len),
                        "b".repeat(70)
                    );
                    assert_eq!(skip(&body, 0), skipped(&body), "{len} at {at}: {next}");
                    assert_eq!(skip(&body, 3), skipped(&body[3..]).map(|(e, x)| (e + 3, x)));
                }
            }
        }
    }

    #[test]
    fn skip_ends_where_decoding_ends() {
        for body in [
            r#"plain""#,
            r#"a\"b\\c\/d" tail"#,
            r#"\u00e9\u0041""#,
            r#"""#,
            r#"\ud83d\ude00""#,
            r#"\x41""#,
            "no end",
            r#"ends \"#,
        ] {
            assert_eq!(skip(body, 0), skipped(body), "{body}");
        }
    }

    proptest! {
        #[test]
        fn skip_agrees_with_decoding(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[a-z =]{0,40}",
                    Just(r#"\""#.to_string()),
                    Just(r"\\".to_string()),
                    Just(r"\u00e9".to_string()),
                    Just(r"\ud800".to_string()),
                    Just(r"\q".to_string()),
                ],
                0..30,
            ),
            tail in "[a-z\"\\\\]{0,40}",
        ) {
            let body = format!("{}\"{tail}", parts.concat());
            prop_assert_eq!(skip(&body, 0), skipped(&body));
            prop_assert_eq!(skip_tail(&body, 0, false), skipped(&body));
        }

        #[test]
        fn blocks_agree_with_serde_json(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[a-z =]{0,40}",
                    Just(r#"\""#.to_string()),
                    Just(r"\\".to_string()),
                    Just(r"\n".to_string()),
                    Just(r"\u00e9".to_string()),
                    Just("é日".to_string()),
                    Just(r"\q".to_string()),
                ],
                0..30,
            ),
            tail in "[a-z\"\\\\]{0,40}",
        ) {
            let body = format!("{}\"{tail}", parts.concat());
            let got = decode(&body);
            prop_assert_eq!(&got, &portable(&body));
            if got.is_some() {
                prop_assert_eq!(got, reference(&body));
            }
        }
    }
}
