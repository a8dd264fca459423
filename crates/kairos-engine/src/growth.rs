//! How a customer's lists grow. A million customers each hold a few short
//! lists (de-dup entries, cart lines, a ladder's causing ids, kept
//! properties) for a long time, and most stay short: doubling from four
//! would leave room for entries that never come in every one of them. So a
//! list grows one entry at a time while short, and by doubling after (so a
//! long one still costs amortised O(1) per entry), never past what it can
//! hold.

use thin_vec::ThinVec;

/// Up to this many entries a list grows one at a time.
const EXACT_UP_TO: usize = 4;

/// Makes room for one more entry in `list`, which never holds more than
/// `most`.
pub fn reserve_one<T>(list: &mut ThinVec<T>, most: usize) {
    let len = list.len();
    if len == list.capacity() {
        let room = if len < EXACT_UP_TO {
            1
        } else {
            len.min(most.saturating_sub(len)).max(1)
        };
        list.reserve_exact(room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacities(most: usize, pushes: usize) -> Vec<usize> {
        let mut list = ThinVec::new();
        let mut seen = Vec::new();
        for item in 0..pushes {
            reserve_one(&mut list, most);
            list.push(item);
            if seen.last() != Some(&list.capacity()) {
                seen.push(list.capacity());
            }
        }
        seen
    }

    #[test]
    fn short_lists_grow_exactly_then_double_up_to_the_most() {
        assert_eq!(capacities(9, 9), [1, 2, 3, 4, 8, 9]);
        assert_eq!(capacities(50, 50), [1, 2, 3, 4, 8, 16, 32, 50]);
        assert_eq!(capacities(usize::MAX, 20), [1, 2, 3, 4, 8, 16, 32]);
        // Past the most (a caller that pushes more anyway): one at a time.
        assert_eq!(capacities(2, 6), [1, 2, 3, 4, 5, 6]);
    }
}
