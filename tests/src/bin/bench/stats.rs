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

/// Student's t at 97.5% for 1…30 degrees of freedom; beyond, 30's (a little wider than the truth).
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The mean of `values` (independent draws of one roughly normal quantity: here each session's
/// median) and a 95% confidence interval for it, from their own spread (Student's t): (mean, low,
/// high). None for fewer than two values.
pub fn mean_interval(values: &[f64]) -> Option<(f64, f64, f64)> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half_width = T_975[(n - 2).min(T_975.len() - 1)] * (variance / n as f64).sqrt();
    Some((mean, mean - half_width, mean + half_width))
}

#[cfg(test)]
mod tests {
    use super::{mean_interval, median, median_interval, quantile};

    #[test]
    fn the_mean_of_five_sessions_lies_within_t_times_its_standard_error() {
        // Mean 8, standard deviation √2, standard error √2/√5; t(4) = 2.776.
        let (mean, low, high) = mean_interval(&[6.0, 8.0, 10.0, 8.0, 8.0]).unwrap();
        assert!((mean - 8.0).abs() < 1e-9);
        assert!(
            (high - 9.7557).abs() < 1e-3 && (low - 6.2443).abs() < 1e-3,
            "{low} {high}"
        );
        // Two values: t(1) = 12.706, the interval wide.
        let (_, low, high) = mean_interval(&[7.0, 9.0]).unwrap();
        assert!(
            (high - 20.706).abs() < 1e-3 && (low + 4.706).abs() < 1e-3,
            "{low} {high}"
        );
        assert_eq!(mean_interval(&[8.0]), None);
    }

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
