//! Unit tests of `acl.rs`.

use super::*;

/// README's `ACL SETUSER` lines are the ones these roles make.
#[test]
fn readme_has_the_acl_lines_of_every_role() {
    let readme = include_str!("../../../../README.md");
    for role in ROLES {
        let line = role.setuser_line("mq");
        assert!(readme.contains(&line), "README lacks `{line}`");
    }
    assert!(readme.contains(&format!("+{}", XACKDEL.rule)));
}

/// The ACL rules of the commands a Lua script calls (`redis.call('XINFO', 'GROUPS', ..)`
/// gives `xinfo|groups`).
fn script_rules(lua: &str) -> Vec<String> {
    let mut rules = Vec::new();
    for part in lua.split("redis.call(").skip(1) {
        let mut args = part.split([',', ')']).map(|a| a.trim().trim_matches('\''));
        let cmd = args.next().unwrap_or_default().to_lowercase();
        let rule = match cmd.as_str() {
            "xinfo" | "xgroup" => {
                format!("{cmd}|{}", args.next().unwrap_or_default().to_lowercase())
            }
            _ => cmd,
        };
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    rules
}

/// Every command of every Lua script a role runs is in the role's list, so a user with the
/// documented ACL line never has a script refused half way.
#[test]
fn lists_cover_every_command_of_each_roles_scripts() {
    let unique = include_str!("../lua/unique.lua");
    let producer = [
        include_str!("../lua/delay.lua"),
        include_str!("../lua/schedule.lua"),
        include_str!("../lua/enqueue_unique.lua"),
        include_str!("../lua/run.lua"),
        include_str!("../lua/run_open.lua"),
        include_str!("../lua/run_seal.lua"),
    ];
    let worker = [
        include_str!("../lua/ack_unique.lua"),
        include_str!("../lua/ack_report.lua"),
        include_str!("../lua/cancelled.lua"),
        include_str!("../lua/dead.lua"),
        include_str!("../lua/drain.lua"),
        include_str!("../lua/ensure_group.lua"),
        include_str!("../lua/promote.lua"),
        include_str!("../lua/reap_consumers.lua"),
        include_str!("../lua/reclaim.lua"),
        include_str!("../lua/release.lua"),
        include_str!("../lua/renew.lua"),
        include_str!("../lua/retry.lua"),
        include_str!("../lua/stats.lua"),
        include_str!("../lua/status.lua"),
        include_str!("../lua/run.lua"),
        include_str!("../lua/started.lua"),
        unique,
    ];
    // replay.lua uses unique.lua's readers; cancel.lua its release too.
    let admin = [
        include_str!("../lua/replay.lua"),
        include_str!("../lua/cancel.lua"),
        include_str!("../lua/status.lua"),
        include_str!("../lua/run.lua"),
        unique,
    ];
    for (role, scripts, lists) in [
        ("producer", &producer[..], PRODUCER_ROLE.commands),
        ("worker", &worker[..], WORKER_ROLE.commands),
        ("admin", &admin[..], ADMIN_ROLE.commands),
        ("producer", &[][..], PRODUCER_ROLE.commands),
    ] {
        let have: Vec<&str> = lists
            .iter()
            .flat_map(|l| l.iter())
            .map(|n| n.rule)
            .collect();
        for lua in scripts {
            for rule in script_rules(lua) {
                assert!(have.contains(&rule.as_str()), "{role} lacks +{rule}");
            }
        }
    }
    assert_eq!(
        script_rules("redis.call('XINFO', 'GROUPS', k) redis.call('GET', k)"),
        ["xinfo|groups", "get"]
    );
}

#[test]
fn lines_name_each_rule_once_with_the_prefix_in_every_pattern() {
    let line = ADMIN_ROLE.setuser_line_as("u", "app");
    assert!(line.starts_with(
        "ACL SETUSER u on ><password> resetkeys %R~app:{*}:duplicates %R~app:{*}:slots:* "
    ));
    assert_eq!(line.matches(" +xrange ").count(), 1, "{line}");
    assert!(!line.contains("<p>") && !line.contains(" ~mq:"), "{line}");
    let cli = CLI_ROLE.setuser_line("mq");
    for rule in ["+eval", "+evalsha", "+script|load", " ~"] {
        assert!(
            !cli.contains(&format!("{rule} ")),
            "read-only role has {rule}: {cli}"
        );
    }
    assert!(!PRODUCER_ROLE.setuser_line("mq").contains("paused"));
}
