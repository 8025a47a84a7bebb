//! The rule language, as typed at `tabby profile rule add` and as read
//! back in JSON: an error or a rule that is valid and prints back as
//! itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tabby::model::Rule;
use tabby::policy::rules;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let words: Vec<&str> = text.split_whitespace().collect();
    if let Ok(rule) = rules::parse_rule(&words) {
        assert!(
            rules::validate(&rule).is_ok(),
            "parsed but invalid: {rule:?}"
        );
        let printed = rule.to_string();
        let again: Vec<&str> = printed.split_whitespace().collect();
        assert_eq!(rules::parse_rule(&again), Ok(rule), "{printed}");
    }
    if let Ok(rule) = serde_json::from_slice::<Rule>(data) {
        if rules::validate(&rule).is_ok() {
            let printed = rule.to_string();
            let words: Vec<&str> = printed.split_whitespace().collect();
            assert!(
                rules::parse_rule(&words).is_ok(),
                "valid {printed:?} does not parse"
            );
        }
    }
});
