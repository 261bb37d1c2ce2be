//! Broken scenarios: each file in tests/bad_scenarios/ must fail with the first error at
//! exactly this `line:col`, with this text in the message (and in this file when the
//! error is inside a NAT profile the scenario loads).

use std::path::Path;

/// (scenario file, line, column, message substring, file of the error if not the scenario)
const TABLE: &[(&str, usize, usize, &str, Option<&str>)] = &[
    (
        "address-outside-network.yaml",
        11,
        36,
        "address 10.0.2.5 is not in network `home` (10.0.1.0/24)",
        None,
    ),
    (
        "address-used-twice.yaml",
        13,
        44,
        "address 203.0.113.5 is already used by host `bob` at 12:38",
        None,
    ),
    (
        "alias-rejected.yaml",
        14,
        13,
        "YAML anchors (`&name`) are not supported in scenarios; write the",
        None,
    ),
    (
        "at-outside-step-map.yaml",
        24,
        5,
        "`at` must sit inside the step's map",
        None,
    ),
    (
        "bad-comparison.yaml",
        26,
        11,
        "`loss`: `=< 3%`: unknown operator; use <, <=, ==, >= or > (a bare",
        None,
    ),
    (
        "bad-duration.yaml",
        13,
        13,
        "`time_limit`: `5 minutes` is not a duration; write e.g. 150ms",
        None,
    ),
    (
        "bad-mapping-value.yaml",
        9,
        14,
        "`endpoint-indep` is not a valid `mapping` value",
        None,
    ),
    (
        "bad-measure-enum.yaml",
        19,
        14,
        "`endpoint-indep` is not a valid `mapping` value",
        None,
    ),
    (
        "bad-name-syntax.yaml",
        11,
        3,
        "`Alice` is not a valid host name",
        None,
    ),
    (
        "bad-percent.yaml",
        14,
        31,
        "`loss`: `2` is not a percentage; write e.g. 2% or 0.5%",
        None,
    ),
    (
        "bad-preset.yaml",
        9,
        11,
        "`cone` is not a valid `type` value",
        None,
    ),
    (
        "bad-rate.yaml",
        15,
        17,
        "`rate`: `1mb` is not a rate; write e.g. 64kbit, 1mbit (units: bit,",
        None,
    ),
    (
        "call-without-ua.yaml",
        21,
        40,
        "`to`: host `server` has no `ua` agent",
        None,
    ),
    (
        "comparison-wrong-unit.yaml",
        26,
        17,
        "`setup_time`: `3%` is not a duration",
        None,
    ),
    (
        "duplicate-key.yaml",
        9,
        5,
        "duplicate key `inside` (first at 8:5)",
        None,
    ),
    (
        "duplicate-name.yaml",
        11,
        3,
        "the name `home` is already used by the network at 5:3",
        None,
    ),
    (
        "duplicate-step-name.yaml",
        15,
        20,
        "the name `h1` is already used by the step at 14:20",
        None,
    ),
    (
        "empty-file.yaml",
        1,
        1,
        "the file is empty; a scenario starts with `version: 1`",
        None,
    ),
    (
        "exclude-not-matrix-key.yaml",
        15,
        16,
        "`cgn.type` is not a key of this matrix",
        None,
    ),
    (
        "expect-unknown-step.yaml",
        16,
        12,
        "no punch step is named `h2`",
        None,
    ),
    (
        "expect-wrong-kind.yaml",
        25,
        11,
        "`p1` is a probe step, not a call step",
        None,
    ),
    (
        "fabric-unknown.yaml",
        13,
        9,
        "`virtul` is not a valid `fabric` value",
        None,
    ),
    (
        "firewall-bad-class.yaml",
        7,
        51,
        "`tcp-only` is not a valid `class` value",
        None,
    ),
    (
        "firewall-rule-bad-ports.yaml",
        11,
        45,
        "`ports`: `2000-1000`: the range starts after it ends; write 1000-2000",
        None,
    ),
    (
        "gilbert-missing-r.yaml",
        14,
        29,
        "`gilbert` has no `r`",
        None,
    ),
    (
        "host-address-and-addresses.yaml",
        11,
        46,
        "host `alice` has both `address` and `addresses`",
        None,
    ),
    (
        "host-unknown-network.yaml",
        11,
        21,
        "`network`: unknown network `hom`",
        None,
    ),
    (
        "link-mixed-forms.yaml",
        16,
        5,
        "`loss` sits beside `up`/`down` in link `alice`",
        None,
    ),
    (
        "link-target-unknown.yaml",
        14,
        3,
        "link target `nat-a.middle`: unknown side `middle`",
        None,
    ),
    (
        "matrix-cell-bad-value.yaml",
        14,
        27,
        "`bogus` is not a valid `type` value",
        None,
    ),
    (
        "matrix-key-unresolved.yaml",
        14,
        3,
        "matrix key `nat-b.type` does not resolve: `nat-b` is neither a",
        None,
    ),
    (
        "measure-wrong-step.yaml",
        18,
        5,
        "a punch step cannot produce `mos`",
        None,
    ),
    (
        "missing-version.yaml",
        1,
        1,
        "the scenario has no `version`",
        None,
    ),
    (
        "nat-inside-unknown-network.yaml",
        8,
        13,
        "`inside`: unknown network `office`",
        None,
    ),
    (
        "nat-loop.yaml",
        7,
        28,
        "NATs/firewalls nest in a loop: a -> b -> a",
        None,
    ),
    (
        "nat-pool-not-in-outside.yaml",
        9,
        47,
        "address 198.51.100.11 is not in network `internet` (203.0.113.0/24)",
        None,
    ),
    (
        "nat-step-addresses.yaml",
        14,
        39,
        "`addresses` only goes with `action: renumber`, not `reboot`",
        None,
    ),
    (
        "overlapping-prefixes.yaml",
        6,
        8,
        "network `lab` (10.0.0.0/16) overlaps network `home` (10.0.1.0/24)",
        None,
    ),
    (
        "pool-used-by-host.yaml",
        12,
        44,
        "address 203.0.113.11 is already used by NAT `nat-a` at 9:47",
        None,
    ),
    (
        "prefix-host-bits.yaml",
        5,
        9,
        "`10.0.1.1/24` is not a network prefix: host bits are set; did you mean 10.0.1.0/24?",
        None,
    ),
    (
        "probe-server-without-stun.yaml",
        14,
        45,
        "`server`: host `alice` runs no `stun` service",
        None,
    ),
    (
        "profile-bad-axis.yaml",
        3,
        1,
        "unknown key `filtring` in the NAT profile",
        Some("bad-router.yaml"),
    ),
    (
        "profile-missing.yaml",
        9,
        14,
        "cannot read NAT profile",
        None,
    ),
    (
        "reinvite-unknown-call.yaml",
        23,
        23,
        "no earlier step is named `c9`",
        None,
    ),
    (
        "renumber-outside-network.yaml",
        14,
        53,
        "address 10.0.1.50 is not in the NAT's outside network (203.0.113.0/24)",
        None,
    ),
    (
        "service-unknown-key.yaml",
        15,
        56,
        "unknown key `rtpengine` in `sip-proxy`",
        None,
    ),
    (
        "step-unknown-host.yaml",
        14,
        41,
        "`between`: unknown host `nobody`",
        None,
    ),
    (
        "stun-alternate-not-host-address.yaml",
        15,
        24,
        "the STUN alternate address 203.0.113.7 is not an address of host",
        None,
    ),
    (
        "two-devices-same-inside.yaml",
        11,
        19,
        "network `home` is already the inside of `nat-a`",
        None,
    ),
    (
        "type-and-profile.yaml",
        10,
        5,
        "NAT `nat-a` has both `type` and `profile` (first at 9:5)",
        None,
    ),
    (
        "unknown-nat-key.yaml",
        9,
        5,
        "unknown key `mapings` in NAT `nat-a`",
        None,
    ),
    (
        "unknown-step-kind.yaml",
        23,
        5,
        "unknown step kind `dial`",
        None,
    ),
    (
        "unknown-top-key.yaml",
        13,
        1,
        "unknown key `hostz` in the scenario",
        None,
    ),
    (
        "version-2.yaml",
        1,
        10,
        "unsupported scenario format version 2",
        None,
    ),
    (
        "when-path-unresolved.yaml",
        17,
        13,
        "`when` path `nat-z.type` does not resolve: `nat-z` is neither a",
        None,
    ),
    (
        "when-default-excluded.yaml",
        21,
        13,
        "this `when:` holds in no cell, so the expectation would never be checked: `nat-a.filtering` is endpoint-independent across the cells",
        None,
    ),
    (
        "when-undefined-key.yaml",
        18,
        13,
        "`nat-a.typo` is set in no cell and has no default",
        None,
    ),
    (
        "when-value-typo.yaml",
        20,
        13,
        "holds in no cell, so the expectation would never be checked: `nat-a.type` is full-cone | symmetric across the cells",
        None,
    ),
    (
        "wrong-type-hosts.yaml",
        11,
        3,
        "`hosts` must be a mapping, not a sequence",
        None,
    ),
    (
        "yaml-syntax-error.yaml",
        14,
        10,
        "YAML syntax error: unclosed bracket '{'",
        None,
    ),
];

#[test]
fn every_bad_scenario_fails_where_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_scenarios");
    let mut failures = Vec::new();
    for (file, line, col, text, in_file) in TABLE {
        let path = dir.join(file);
        let errs = match harness::scenario::load(&path) {
            Ok(_) => {
                failures.push(format!("{file}: parsed without error"));
                continue;
            }
            Err(e) => e,
        };
        let first = &errs.errors()[0];
        let want_file = in_file.unwrap_or(file);
        let ok = first.pos.line == *line
            && first.pos.col == *col
            && first.message.contains(text)
            && first.file.ends_with(want_file);
        if !ok {
            failures.push(format!(
                "{file}: want {want_file}:{line}:{col} containing {text:?}, got:\n{errs}"
            ));
        }
        // The printed form is `file:line:col: message`.
        let shown = first.to_string();
        assert!(shown.contains(&format!(":{line}:{col}: ")), "{shown}");
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_file_is_in_the_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_scenarios");
    let mut missing = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if !TABLE.iter().any(|t| t.0 == name) && name != "many-errors.yaml" {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "not in TABLE: {missing:?}");
    assert!(TABLE.len() >= 30);
}

#[test]
fn errors_are_collected_not_just_the_first() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_scenarios/many-errors.yaml");
    let errs = harness::scenario::load(&path).unwrap_err();
    let at: Vec<(usize, usize)> = errs
        .errors()
        .iter()
        .map(|e| (e.pos.line, e.pos.col))
        .collect();
    assert_eq!(at, vec![(3, 1), (5, 9), (8, 21), (9, 3)], "\n{errs}");
    // Every error has a hint.
    assert!(errs.errors().iter().all(|e| e.help.is_some()), "{errs}");
}
