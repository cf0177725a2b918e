//! Property tests of the chain resolver over random in-memory chains: the extents tile the disk
//! and are coalesced, and every read equals a byte-by-byte model of the chain semantics, from
//! any offset, at any length, from several threads.

use proptest::prelude::*;
use xva_backends::testutil::{Layer, MemLayer};
use xva_backends::BlockReader;

/// A layer described as (size, fill byte, segment kinds over equal-ish pieces).
#[derive(Clone, Debug)]
struct Spec {
    size: u64,
    fill: u8,
    segs: Vec<(u64, u64, Layer)>,
}

fn layer_kind() -> impl Strategy<Value = Layer> {
    prop_oneof![Just(Layer::Data), Just(Layer::Zero), Just(Layer::Unalloc)]
}

fn spec() -> impl Strategy<Value = Spec> {
    (1u64..5000, 1u8..=255, prop::collection::vec((1u64..700, layer_kind()), 1..12)).prop_map(|(size, fill, pieces)| {
        let mut segs = Vec::new();
        let mut pos = 0;
        for (i, (len, kind)) in pieces.iter().enumerate() {
            if pos >= size {
                break;
            }
            let len = if i == pieces.len() - 1 { size - pos } else { (*len).min(size - pos) };
            segs.push((pos, len, *kind));
            pos += len;
        }
        if pos < size {
            segs.push((pos, size - pos, Layer::Data));
        }
        Spec { size, fill, segs }
    })
}

fn build(specs: &[Spec]) -> Box<dyn BlockReader> {
    let mut parent: Option<Box<dyn BlockReader>> = None;
    for s in specs.iter().rev() {
        parent = Some(Box::new(MemLayer::new(s.size, s.fill, &s.segs, parent)));
    }
    parent.unwrap()
}

/// The chain semantics, one byte at a time, written independently of the resolver.
fn model_byte(specs: &[Spec], off: u64) -> u8 {
    for s in specs {
        if off >= s.size {
            return 0; // past this layer's end: zeros
        }
        let (_, _, kind) = s.segs.iter().find(|(st, l, _)| *st <= off && off < st + l).unwrap();
        match kind {
            Layer::Data => return s.fill,
            Layer::Zero => return 0,
            Layer::Unalloc => continue,
        }
    }
    0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn extents_tile_the_disk_and_are_coalesced(specs in prop::collection::vec(spec(), 1..4)) {
        let r = build(&specs);
        let size = r.virtual_size();
        let ext: Vec<_> = r.extents(0..size).map(|m| m.unwrap()).collect();
        let mut pos = 0;
        for (i, m) in ext.iter().enumerate() {
            prop_assert_eq!(m.start, pos);
            prop_assert!(m.len > 0);
            if i > 0 {
                prop_assert!(!ext[i - 1].joins(m), "adjacent extents say the same thing");
            }
            // data and zero agree with the model on every byte of the extent
            for off in m.start..m.start + m.len {
                if m.zero {
                    prop_assert_eq!(model_byte(&specs, off), 0);
                }
            }
            pos += m.len;
        }
        prop_assert_eq!(pos, size);
    }

    #[test]
    fn reads_equal_the_model(specs in prop::collection::vec(spec(), 1..4), cuts in prop::collection::vec(0u64..5000, 0..6)) {
        let r = build(&specs);
        let size = r.virtual_size();
        let want: Vec<u8> = (0..size).map(|o| model_byte(&specs, o)).collect();
        let mut whole = vec![0xEEu8; size as usize];
        r.read_exact_at(&mut whole, 0).unwrap();
        prop_assert_eq!(&whole, &want);
        // odd pieces
        let mut bounds: Vec<u64> = cuts.into_iter().map(|c| c % (size + 1)).collect();
        bounds.push(0);
        bounds.push(size);
        bounds.sort_unstable();
        for w in bounds.windows(2) {
            let mut b = vec![0xEEu8; (w[1] - w[0]) as usize];
            r.read_exact_at(&mut b, w[0]).unwrap();
            prop_assert_eq!(&b[..], &want[w[0] as usize..w[1] as usize]);
        }
        // 4 KiB-style fixed reads from several threads at once
        let r: &dyn BlockReader = r.as_ref();
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let want = &want;
                s.spawn(move || {
                    let step = 97 + t * 31;
                    let mut off = t;
                    while off < size {
                        let n = step.min(size - off);
                        let mut b = vec![0u8; n as usize];
                        r.read_exact_at(&mut b, off).unwrap();
                        assert_eq!(&b[..], &want[off as usize..(off + n) as usize]);
                        off += n;
                    }
                });
            }
        });
    }
}
