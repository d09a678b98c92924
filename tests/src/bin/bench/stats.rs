//! Summaries of repeated measurements: the median and other quantiles, and how far a median can be
//! trusted.

/// The middle value, of times or of ratios.
pub fn median<T: Copy + PartialOrd>(values: Vec<T>) -> T {
    quantile(values, 0.5)
}

/// The value a fraction `q` of the way up `values` in order (0.25: the lower quartile).
pub fn quantile<T: Copy + PartialOrd>(values: Vec<T>, q: f64) -> T {
    let values = sorted(values);
    values[(q * (values.len() - 1) as f64).round() as usize]
}

/// `values` in increasing order (times and ratios: no NaN among them).
fn sorted<T: PartialOrd>(mut values: Vec<T>) -> Vec<T> {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values
}

/// A 95% confidence interval for the median of `values` (independent draws of one quantity), free
/// of any assumption about their distribution: the order statistics the binomial distribution
/// puts around the middle, `n/2 ∓ 1.96·√n/2` (1-based, rounded outwards). With few values it is
/// their whole range.
pub fn median_interval<T: Copy + PartialOrd>(values: Vec<T>) -> (T, T) {
    let values = sorted(values);
    let n = values.len() as f64;
    let half_width = 1.96 * n.sqrt() / 2.0;
    // 1-based ranks j and k: x(j) … x(k).
    let (j, k) = (
        (n / 2.0 - half_width).floor(),
        (1.0 + n / 2.0 + half_width).ceil(),
    );
    let index = |rank: f64| (rank.clamp(1.0, n) as usize) - 1;
    (values[index(j)], values[index(k)])
}

#[cfg(test)]
mod tests {
    use super::{median, median_interval, quantile};

    #[test]
    fn quartiles_and_median_of_runs_in_any_order() {
        let runs = vec![5, 1, 4, 2, 3];
        assert_eq!(quantile(runs.clone(), 0.0), 1);
        assert_eq!(quantile(runs.clone(), 0.25), 2);
        assert_eq!(median(runs.clone()), 3);
        assert_eq!(quantile(runs.clone(), 0.75), 4);
        assert_eq!(quantile(runs, 1.0), 5);
    }

    #[test]
    fn the_median_of_81_runs_lies_between_the_31st_and_the_51st_with_95_percent_confidence() {
        // Shuffled: the interval is of the values in order.
        let runs: Vec<u32> = (1..=81).map(|i| (i * 37) % 81 + 1).collect();
        assert_eq!(median_interval(runs), (31, 51));
        // Few runs: all of them.
        assert_eq!(median_interval(vec![3, 1, 2]), (1, 3));
        assert_eq!(median_interval(vec![7]), (7, 7));
    }
}
