//! Every failure the planner property test found, kept as a named case (the
//! `REPLAY` line it printed). Each failed before the fix named in the commit
//! that added it.

use super::planner_model::Action;
use super::replay;

#[test]
fn regression_1() {
    use Action::*;
    replay(
        &[
            (0, 44, true),
            (52932, 133, true),
            (850, 31, false),
            (52905, 115, true),
            (13323, 0, false),
            (26621, 125, true),
            (11453, 0, false),
        ],
        &[
            (47, TypeChange { at: 7009 }),
            (9, Remove { at: 20359 }),
            (11, Write { at: 6601, name: 0 }),
            (29, IntoOwnDir { at: 1099 }),
            (
                45,
                Move {
                    at: 59663,
                    to: 36718,
                    name: 0,
                },
            ),
        ],
        &[47663, 4537, 11806, 23874, 22020, 1691, 36752, 0, 0],
        3,
    );
}

#[test]
fn regression_2() {
    use Action::*;
    replay(
        &[
            (0, 107, true),
            (11137, 65, false),
            (45552, 0, true),
            (1981, 1, true),
            (51803, 0, true),
            (3116, 18, false),
        ],
        &[
            (162, TypeChange { at: 2156 }),
            (65, Write { at: 2284, name: 85 }),
        ],
        &[137],
        2,
    );
}

#[test]
fn regression_3() {
    use Action::*;
    replay(
        &[(0, 0, true), (10472, 0, false), (0, 17, false)],
        &[(85, IntoOwnDir { at: 0 }), (6, IntoOwnDir { at: 0 })],
        &[13483, 41237, 56511, 20082, 56971, 9269, 13268],
        2,
    );
}

#[test]
fn regression_4() {
    use Action::*;
    replay(
        &[(0, 151, false)],
        &[
            (0, MakeDir { at: 0, name: 0 }),
            (32, Write { at: 52178, name: 0 }),
            (15, IntoOwnDir { at: 0 }),
            (64, IntoOwnDir { at: 0 }),
        ],
        &[23703, 42195, 42822, 1006, 35631, 62727],
        3,
    );
}

#[test]
fn regression_5() {
    use Action::*;
    replay(
        &[
            (0, 20, true),
            (30158, 59, true),
            (8046, 38, false),
            (13798, 142, true),
            (6352, 129, false),
            (59254, 0, true),
            (19776, 125, false),
        ],
        &[
            (188, Write { at: 9956, name: 91 }),
            (136, IntoOwnDir { at: 52768 }),
            (7, Write { at: 6914, name: 0 }),
            (39, IntoOwnDir { at: 51222 }),
        ],
        &[5540, 9471],
        3,
    );
}

#[test]
fn regression_6() {
    use Action::*;
    replay(
        &[
            (0, 143, true),
            (2550, 28, true),
            (0, 101, false),
            (16069, 41, true),
            (55079, 44, false),
            (46742, 0, false),
            (43690, 43, true),
            (34969, 201, false),
        ],
        &[
            (20, IntoOwnDir { at: 1392 }),
            (216, TypeChange { at: 20031 }),
            (
                158,
                MakeDir {
                    at: 32289,
                    name: 154,
                },
            ),
            (74, TypeChange { at: 7939 }),
            (73, Write { at: 7891, name: 0 }),
            (
                126,
                Move {
                    at: 62285,
                    to: 45854,
                    name: 0,
                },
            ),
        ],
        &[7860, 4361, 9275],
        2,
    );
}

#[test]
fn regression_7() {
    use Action::*;
    replay(
        &[
            (0, 69, true),
            (36380, 4, false),
            (2864, 59, false),
            (12179, 108, false),
            (15199, 1, true),
        ],
        &[
            (1, IntoOwnDir { at: 1980 }),
            (21, TypeChange { at: 5889 }),
            (
                114,
                Move {
                    at: 47267,
                    to: 5216,
                    name: 22,
                },
            ),
        ],
        &[9209, 16832, 25685],
        3,
    );
}

#[test]
fn regression_8() {
    use Action::*;
    replay(
        &[
            (0, 111, true),
            (0, 4, true),
            (63676, 3, false),
            (20843, 12, true),
            (6276, 62, true),
            (23907, 1, false),
            (7471, 154, false),
        ],
        &[
            (28, Remove { at: 0 }),
            (
                92,
                Write {
                    at: 55972,
                    name: 38,
                },
            ),
            (39, MakeDir { at: 2979, name: 0 }),
            (169, Write { at: 0, name: 0 }),
            (
                96,
                Move {
                    at: 23053,
                    to: 14,
                    name: 10,
                },
            ),
        ],
        &[8516, 9853, 10013, 48992, 20644],
        3,
    );
}

#[test]
fn regression_9() {
    use Action::*;
    replay(
        &[
            (0, 128, true),
            (36995, 49, true),
            (6839, 69, false),
            (40176, 19, false),
            (59869, 115, true),
            (6843, 115, false),
        ],
        &[
            (
                188,
                Write {
                    at: 50966,
                    name: 11,
                },
            ),
            (
                115,
                Move {
                    at: 36021,
                    to: 1525,
                    name: 20,
                },
            ),
            (13, Remove { at: 33814 }),
        ],
        &[0, 0, 1464],
        2,
    );
}

#[test]
fn regression_10() {
    use Action::*;
    replay(
        &[
            (0, 4, true),
            (0, 3, true),
            (12536, 110, false),
            (57, 61, true),
            (8302, 59, false),
        ],
        &[
            (
                43,
                Move {
                    at: 35346,
                    to: 5855,
                    name: 0,
                },
            ),
            (151, TypeChange { at: 35088 }),
            (233, Write { at: 9352, name: 55 }),
        ],
        &[582, 61, 3907],
        3,
    );
}

#[test]
fn regression_11() {
    use Action::*;
    replay(
        &[
            (0, 59, true),
            (18823, 74, true),
            (53935, 15, true),
            (2551, 1, true),
            (42446, 44, true),
            (53685, 0, false),
            (47128, 2, false),
        ],
        &[
            (
                119,
                Move {
                    at: 3341,
                    to: 36256,
                    name: 35,
                },
            ),
            (
                29,
                Move {
                    at: 38019,
                    to: 4392,
                    name: 88,
                },
            ),
        ],
        &[],
        2,
    );
}

#[test]
fn regression_12() {
    use Action::*;
    replay(
        &[
            (0, 74, true),
            (21917, 10, true),
            (1340, 5, true),
            (20509, 35, false),
            (33432, 3, true),
            (14628, 38, false),
            (24261, 0, false),
        ],
        &[
            (20, TypeChange { at: 59105 }),
            (
                32,
                MakeDir {
                    at: 19699,
                    name: 185,
                },
            ),
            (181, Remove { at: 15641 }),
            (
                14,
                Move {
                    at: 22224,
                    to: 27955,
                    name: 152,
                },
            ),
        ],
        &[0, 31499, 4999],
        2,
    );
}

#[test]
fn regression_13() {
    use Action::*;
    replay(
        &[
            (0, 13, true),
            (3253, 20, true),
            (20672, 44, false),
            (18748, 83, false),
            (26640, 142, true),
            (2103, 0, false),
        ],
        &[
            (39, TypeChange { at: 15264 }),
            (
                178,
                Move {
                    at: 33199,
                    to: 23412,
                    name: 27,
                },
            ),
            (
                32,
                Write {
                    at: 22741,
                    name: 220,
                },
            ),
        ],
        &[1154, 21, 4502, 14383, 2643, 1060, 42985],
        3,
    );
}

/// Found by `PLANNER_CASES=200000` once a pull no longer decides a conflict
/// on a path changed locally (the push goes first, §7.2).
#[test]
fn regression_ownpush_1() {
    use Action::*;
    replay(
        &[
            (0, 181, true),
            (18222, 12, false),
            (17033, 7, true),
            (18326, 1, false),
            (64, 110, false),
            (4760, 11, false),
            (9597, 51, false),
        ],
        &[
            (11, Remove { at: 17740 }),
            (135, Write { at: 56388, name: 0 }),
            (
                0,
                Move {
                    at: 38333,
                    to: 3903,
                    name: 73,
                },
            ),
            (24, Write { at: 25212, name: 0 }),
            (108, Write { at: 4090, name: 0 }),
            (
                97,
                Move {
                    at: 45539,
                    to: 62127,
                    name: 250,
                },
            ),
        ],
        &[39677, 13422, 24, 6724, 7905, 10488, 1087],
        3,
    );
}

/// A file moved into a directory of its own name and then written in place
/// (the same inode, R-7.2.4), with another device writing elsewhere.
#[test]
fn regression_inode_rename_into_own_dir() {
    use Action::*;
    replay(
        &[
            (0, 200, false),
            (0, 69, true),
            (0, 12, false),
            (31873, 5, false),
            (18287, 2, true),
            (9, 127, true),
        ],
        &[
            (177, IntoOwnDir { at: 0 }),
            (144, Write { at: 44170, name: 0 }),
            (15, Write { at: 0, name: 0 }),
            (64, Write { at: 951, name: 0 }),
        ],
        &[3194, 11539, 19177],
        3,
    );
}

/// A file moved into a directory of its own old name (`mv a t; mkdir a;
/// mv t a/a`) on one device while others write and move elsewhere: a
/// conflict copy `a/a (conflict 3 ...)` appeared though nothing overlapped
/// (the reverted 1ece6dc, 13 of 20 runs of the property test).
#[test]
fn regression_into_own_dir_no_spurious_conflict() {
    use Action::*;
    replay(
        &[
            (0, 72, false),
            (0, 3, true),
            (14232, 161, false),
            (7285, 43, false),
            (8953, 45, true),
        ],
        &[
            (78, TypeChange { at: 12110 }),
            (
                96,
                Write {
                    at: 34282,
                    name: 59,
                },
            ),
            (69, IntoOwnDir { at: 0 }),
            (
                9,
                Move {
                    at: 10363,
                    to: 63301,
                    name: 0,
                },
            ),
            (
                31,
                MakeDir {
                    at: 8928,
                    name: 130,
                },
            ),
        ],
        &[33841, 28769, 33102, 16986],
        3,
    );
}

/// With the model's pull following R-5.2.15 (an entry older than the index
/// is left alone; a deletion removes only what is indexed at its version or
/// older), a directory made again by this device after a move.
#[test]
fn regression_own_push_into_own_dir() {
    use Action::*;
    replay(
        &[
            (0, 83, false),
            (0, 26, true),
            (8335, 0, true),
            (3367, 61, true),
            (878, 0, false),
            (17924, 105, false),
        ],
        &[
            (49, TypeChange { at: 13369 }),
            (
                1,
                Move {
                    at: 12026,
                    to: 24211,
                    name: 22,
                },
            ),
            (56, IntoOwnDir { at: 42355 }),
        ],
        &[11661],
        2,
    );
}

/// Found by the long mode (50,000 cases) once the model's pull followed
///
#[test]
fn regression_long_1() {
    use Action::*;
    replay(
        &[
            (0, 71, false),
            (0, 56, true),
            (8647, 0, true),
            (5538, 101, true),
            (9198, 12, false),
            (33474, 1, true),
        ],
        &[
            (190, Write { at: 34800, name: 0 }),
            (145, TypeChange { at: 15228 }),
            (
                136,
                Move {
                    at: 45979,
                    to: 22602,
                    name: 160,
                },
            ),
            (63, Remove { at: 16673 }),
        ],
        &[0, 0, 42751, 204],
        3,
    );
}

/// Fresh-clone CI of e31e897 (stop 39): a conflict copy `b/b (conflict 2 …)`
/// appeared though no two devices touched overlapping paths.
#[test]
fn regression_ci39_conflict_without_overlap() {
    use Action::*;
    replay(
        &[(0, 251, true), (17250, 181, false), (34285, 27, false)],
        &[
            (
                104,
                MakeDir {
                    at: 11495,
                    name: 133,
                },
            ),
            (127, IntoOwnDir { at: 28267 }),
            (
                133,
                Move {
                    at: 29909,
                    to: 32207,
                    name: 3,
                },
            ),
        ],
        &[0, 0, 2196],
        2,
    );
}

/// Found by `PLANNER_CASES=100000` beside the case above: a conflict copy
/// `b/a (conflict 3 …).txt` though no two devices' changes overlapped.
#[test]
fn regression_s26_swap_beside_a_new_directory() {
    use Action::*;
    replay(
        &[
            (0, 89, true),
            (13250, 10, true),
            (36832, 212, true),
            (23207, 85, false),
            (22848, 87, false),
            (23498, 0, true),
            (36576, 157, false),
        ],
        &[
            (
                11,
                Write {
                    at: 51020,
                    name: 31,
                },
            ),
            (
                17,
                Swap {
                    at: 61997,
                    to: 32055,
                },
            ),
            (81, MakeDir { at: 1419, name: 51 }),
        ],
        &[0, 0, 1104],
        3,
    );
}

/// Found by `PLANNER_CASES=2000000` (s26, after the two above were fixed):
/// a conflict copy `c (conflict 1 …)` though no two devices' changes
/// overlapped.
#[test]
fn regression_s26_swap_then_moves() {
    use Action::*;
    replay(
        &[
            (0, 146, true),
            (2179, 12, false),
            (43056, 12, true),
            (7566, 73, false),
            (19759, 188, false),
        ],
        &[
            (
                32,
                Swap {
                    at: 61526,
                    to: 1594,
                },
            ),
            (43, IntoOwnDir { at: 53098 }),
            (
                5,
                Move {
                    at: 63723,
                    to: 9532,
                    name: 107,
                },
            ),
            (
                31,
                Move {
                    at: 22941,
                    to: 1751,
                    name: 1,
                },
            ),
        ],
        &[2065, 22458, 4124, 3326, 15024, 8522, 0],
        2,
    );
}
