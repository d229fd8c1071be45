//! The list book's rules: origins, covering blocks, undo, one-pass building.

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn timed(expires_ns: Expiry) -> OperatorBlock {
    OperatorBlock {
        by: Setter::Cli,
        reason: Some("x".into()),
        expires_ns,
    }
}

fn block(config: bool, expires_ns: Option<Expiry>) -> Block {
    Block {
        config,
        operator: expires_ns.map(timed),
    }
}

#[test]
fn a_config_block_outlives_a_timed_block_on_the_same_prefix() {
    let mut book = ListBook::default();
    let p = net("192.0.2.0/24");
    let (edits, _) = book.change_blocks(book.config_block_changes(&[p].into()));
    assert_eq!(
        edits,
        [Edit {
            net: p,
            new: Some(0),
            old: None
        }]
    );
    let (edits, _) = book.change_blocks(vec![(p, block(true, Some(50)))]);
    assert!(edits.is_empty(), "stays permanent: {edits:?}");
    assert_eq!(book.due(60), [p]);
    let (edits, _) = book.change_blocks(vec![(p, block(true, None))]);
    assert!(edits.is_empty(), "its expiry changes nothing: {edits:?}");
    assert!(book.due(u64::MAX).is_empty());
    assert_eq!(book.block_count(), 1);
}

#[test]
fn a_timed_block_inside_one_that_outlasts_it_stays_out_of_the_trie() {
    let mut book = ListBook::default();
    let (outer, inner) = (net("10.205.9.0/24"), net("10.205.9.6/32"));
    book.change_blocks(vec![(outer, block(true, None))]);
    let (edits, _) = book.change_blocks(vec![(inner, block(false, Some(100)))]);
    assert!(edits.is_empty(), "covered: {edits:?}");
    assert_eq!(book.in_map(&inner), None);
    // The outer block goes: the inner one must hold on its own now.
    let (edits, undo) = book.change_blocks(vec![(outer, Block::default())]);
    assert_eq!(
        edits,
        [
            Edit {
                net: outer,
                new: None,
                old: Some(0)
            },
            Edit {
                net: inner,
                new: Some(100),
                old: None
            },
        ]
    );
    // Undone (the write failed): as before.
    book.restore_blocks(undo);
    assert_eq!(book.in_map(&outer), Some(0));
    assert_eq!(book.in_map(&inner), None);
    // A timed outer block that ends first does not cover a longer-lived inner one.
    let (edits, _) = book.change_blocks(vec![(outer, block(false, Some(50)))]);
    assert_eq!(
        edits,
        [
            Edit {
                net: outer,
                new: Some(50),
                old: Some(0)
            },
            Edit {
                net: inner,
                new: Some(100),
                old: None
            }
        ]
    );
    // A permanent inner block inside a timed outer one is written.
    let other = net("10.205.9.7/32");
    let (edits, _) = book.change_blocks(vec![(other, block(false, Some(0)))]);
    assert_eq!(
        edits,
        [Edit {
            net: other,
            new: Some(0),
            old: None
        }]
    );
}

#[test]
fn a_book_built_at_once_is_the_book_built_step_by_step() {
    let block: BTreeSet<IpNet> = ["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"]
        .iter()
        .map(|s| net(s))
        .collect();
    let allow: BTreeSet<IpNet> = [net("192.0.2.0/24")].into();
    let at_once = ListBook::from_config(&block, &allow);
    let mut stepwise = ListBook::default();
    stepwise.change_blocks(stepwise.config_block_changes(&block));
    let (allows, _) = stepwise.config_allow_changes(&allow);
    stepwise.commit_allows(allows);
    assert_eq!(at_once.blocks, stepwise.blocks);
    assert_eq!(at_once.allows, stepwise.allows);
    assert_eq!(at_once.lengths_v4, stepwise.lengths_v4);
    assert_eq!(at_once.lengths_v6, stepwise.lengths_v6);
    let materialized: Vec<_> = at_once.materialized().collect();
    assert_eq!(
        materialized.len(),
        2,
        "10.1.0.0/16 is inside 10.0.0.0/8: {materialized:?}"
    );
}

#[test]
fn a_reload_removes_only_what_the_config_added() {
    let mut book = ListBook::default();
    let (a, b) = (net("192.0.2.0/24"), net("198.51.100.0/24"));
    book.change_blocks(book.config_block_changes(&[a, b].into()));
    let (allows, _) = book.config_allow_changes(&[a].into());
    book.commit_allows(allows);
    book.change_blocks(vec![(b, block(true, Some(0)))]);
    let (edits, _) = book.change_blocks(book.config_block_changes(&BTreeSet::new()));
    assert_eq!(
        edits,
        [Edit {
            net: a,
            new: None,
            old: Some(0)
        }]
    );
    let (allows, allow_edits) = book.config_allow_changes(&BTreeSet::new());
    assert_eq!(
        allow_edits,
        [Edit {
            net: a,
            new: None,
            old: Some(0)
        }]
    );
    book.commit_allows(allows);
    assert!(book.block(&a).is_none());
    assert_eq!(book.block(&b).unwrap().reason().as_deref(), Some("x"));
    assert_eq!((book.block_count(), book.allow_count()), (1, 0));
}

/// `levee explain` names the entry the program's trie matches: the longest prefix held.
#[test]
fn the_covering_entry_is_the_longest_prefix_the_trie_holds() {
    let mut book = ListBook::default();
    let (outer, inner) = (net("10.205.0.0/16"), net("10.205.9.0/24"));
    let ip = "10.205.9.6".parse().unwrap();
    assert!(book.block_covering(ip).is_none());
    book.change_blocks(vec![(outer, block(false, Some(200)))]);
    book.change_blocks(vec![(inner, block(false, Some(300)))]);
    assert_eq!(book.block_covering(ip).map(|(n, _)| n), Some(inner));
    // Outlasted by the /16, the /24 stays out of the trie: the /16 matches.
    book.change_blocks(vec![(inner, block(false, Some(100)))]);
    assert_eq!(book.block_covering(ip).map(|(n, _)| n), Some(outer));
    assert!(book.block_covering("10.206.0.1".parse().unwrap()).is_none());
    let v6 = net("2001:db8::/32");
    book.set_allow(
        v6,
        Allow {
            cli: true,
            ..Allow::default()
        },
    );
    let (found, allow) = book.allow_covering("2001:db8::7".parse().unwrap()).unwrap();
    assert_eq!(found, v6);
    assert!(allow.cli && !allow.config);
    assert!(book.allow_covering(ip).is_none());
}
