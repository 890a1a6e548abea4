//! The IMA policy parser on arbitrary text: it must never panic; every accepted rule
//! must print in a loadable form that parses back to the same rule; compiled
//! evaluation must agree with the rule-by-rule walk; analysis must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ima::policy::{analyze, parse_all, parse_rule, Func, KernelConfig, Request, MAY_READ};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for cfg in [
        KernelConfig::default(),
        KernelConfig {
            modsig: false,
            key_check: false,
            sigv3_regular: false,
        },
    ] {
        let out = parse_all(text, &cfg);
        let _ = out.policy.to_kernel_string();
        for rule in &out.policy.rules {
            let printed = rule.loadable().to_string();
            let again = parse_rule(&printed, &cfg).expect("loadable form parses");
            assert_eq!(&again, rule, "{printed}");
            assert_eq!(again.to_string(), rule.to_string());
        }
        let compiled = out.policy.compile();
        for func in [Func::FileCheck, Func::BprmCheck, Func::PostSetattr, Func::KeyCheck] {
            let q = Request {
                fsmagic: 0xef53,
                fsname: "ext4",
                func_data: Some(".ima"),
                ..Request::new(func, MAY_READ)
            };
            assert_eq!(compiled.evaluate(&q), compiled.evaluate_reference(&q));
            let _ = compiled.explain(&q);
        }
        let _ = analyze(&out.policy);
    }
});
