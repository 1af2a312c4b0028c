//! The alignedslice affine transform: the request's six numbers and their inverse, Pillow's order.
//!
//! See docs/design.md §4 (alignedslice). The request lists the matrix by columns, `[a, b, c, d, e, f]`:
//! a raw pixel (x, y) lands at `x' = a·x + c·y + e`, `y' = b·x + d·y + f`. Pillow's
//! `Image.transform(.., Image.AFFINE, data)` wants the opposite direction, the inverse map from an
//! output pixel to the source, as `data = (A, B, C, D, E, F)` with `x_in = A·x + B·y + C` and
//! `y_in = D·x + E·y + F`; [`AffineTransform::inverse`] computes it.

use crate::request::wire::TRANSFORM;
use crate::{Error, Result};

/// An affine transform from raw-slice pixels to the aligned frame, as the request gives it.
///
/// Construction takes any six numbers; [`AffineTransform::inverse`] is where a transform that
/// cannot be inverted becomes a `transform` field error.
///
/// ```
/// use emwrite::resample::affine::AffineTransform;
///
/// // Shift right by 10 and down by 20: the inverse pulls from 10 left and 20 up.
/// let t = AffineTransform::new([1.0, 0.0, 0.0, 1.0, 10.0, 20.0]);
/// assert_eq!(t.inverse()?, [1.0, 0.0, -10.0, 0.0, 1.0, -20.0]);
/// # Ok::<(), emwrite::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineTransform {
    /// `[a, b, c, d, e, f]` as in the request.
    columns: [f64; 6],
}

impl AffineTransform {
    /// The request's `[a, b, c, d, e, f]` (matrix by columns), unchecked.
    pub const fn new(columns: [f64; 6]) -> Self {
        Self { columns }
    }

    /// The identity transform: the aligned slice is the raw slice.
    pub const fn identity() -> Self {
        Self::new([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    }

    /// The request's `[a, b, c, d, e, f]`.
    pub fn columns(&self) -> [f64; 6] {
        self.columns
    }

    /// The inverse map in Pillow's order `(A, B, C, D, E, F)`: the `data` argument of
    /// `Image.transform(size, Image.AFFINE, data, ..)` and the input of
    /// [`resample_affine`](super::bicubic::resample_affine). The f64 operations are exactly those
    /// documented on [`inverse_coefficients`]; the Pillow oracle
    /// (`tests/oracles/pillow_transform.py`) receives the resulting numbers.
    ///
    /// Fails with a `transform` field error when a coefficient is not finite, when the matrix is
    /// singular (`a·d − b·c` is 0 or overflows), or when the inverse overflows (a determinant so
    /// small that `d / det` is infinite): the resampler would otherwise see infinities and NaNs.
    ///
    /// ```
    /// use emwrite::resample::affine::AffineTransform;
    ///
    /// let e = AffineTransform::new([1.0, 2.0, 2.0, 4.0, 0.0, 0.0]).inverse().unwrap_err();
    /// assert_eq!(e.to_string(), "transform: not invertible (determinant 0)");
    /// ```
    pub fn inverse(&self) -> Result<[f64; 6]> {
        let columns = self.columns;
        if let Some((i, v)) = columns.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::bad_field(
                TRANSFORM,
                format!("coefficient {i} is {v}, expected a finite number"),
            ));
        }
        let [a, b, c, d, _, _] = columns;
        let det = a * d - b * c;
        if det == 0.0 || !det.is_finite() {
            return Err(Error::bad_field(
                TRANSFORM,
                format!("not invertible (determinant {det})"),
            ));
        }
        let inverse = inverse_coefficients(columns);
        if inverse.iter().any(|v| !v.is_finite()) {
            return Err(Error::bad_field(
                TRANSFORM,
                format!("not invertible in f64 (determinant {det:e}, inverse {inverse:?})"),
            ));
        }
        Ok(inverse)
    }
}

/// The closed-form inverse of `[a, b, c, d, e, f]`, in Pillow's order `(A, B, C, D, E, F)`.
///
/// Each value is exactly this f64 expression, every operation rounded once to nearest (IEEE 754
/// binary64, no fused multiply-add: Rust never contracts), so Python floats or any other
/// implementation reproduce it bit for bit (`benches/peers/pillow_resample.py` does):
///
/// ```text
/// det = (a*d) - (b*c)
/// A = d / det          B = (-c) / det       C = ((c*f) - (d*e)) / det
/// D = (-b) / det       E = a / det          F = ((b*e) - (a*f)) / det
/// ```
///
/// No check is made here: a singular matrix gives infinities or NaN. Use
/// [`AffineTransform::inverse`] for request input.
///
/// ```
/// use emwrite::resample::affine::inverse_coefficients;
///
/// // A scale by 2 pulls from half the coordinates.
/// let inverse = inverse_coefficients([2.0, 0.0, 0.0, 2.0, 0.0, 0.0]);
/// assert_eq!(inverse, [0.5, 0.0, 0.0, 0.0, 0.5, 0.0]);
/// ```
pub fn inverse_coefficients(columns: [f64; 6]) -> [f64; 6] {
    let [a, b, c, d, e, f] = columns;
    let det = a * d - b * c;
    [
        d / det,
        -c / det,
        (c * f - d * e) / det,
        -b / det,
        a / det,
        (b * e - a * f) / det,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// Applies the request's forward map to a point.
    fn forward(t: [f64; 6], x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d, e, f] = t;
        (a * x + c * y + e, b * x + d * y + f)
    }

    /// Applies Pillow's inverse map to a point.
    fn pull(inv: [f64; 6], x: f64, y: f64) -> (f64, f64) {
        let [a0, a1, a2, a3, a4, a5] = inv;
        (a0 * x + a1 * y + a2, a3 * x + a4 * y + a5)
    }

    #[test]
    fn identity_inverse_is_identity() {
        let inv = AffineTransform::identity().inverse().unwrap();
        assert_eq!(inv, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn columns_are_read_as_x_prime_equals_a_x_plus_c_y_plus_e() {
        // Rotation by 90° (x → y, y → −x) then a shift: (1, 0) lands on (5, 8), (0, 1) on (4, 7).
        let cols = [0.0, 1.0, -1.0, 0.0, 5.0, 7.0];
        assert_eq!(forward(cols, 1.0, 0.0), (5.0, 8.0));
        assert_eq!(forward(cols, 0.0, 1.0), (4.0, 7.0));
        let inv = AffineTransform::new(cols).inverse().unwrap();
        assert_eq!(pull(inv, 5.0, 8.0), (1.0, 0.0));
        assert_eq!(pull(inv, 4.0, 7.0), (0.0, 1.0));
    }

    #[test]
    fn inverse_round_trips_points() {
        let cols = [0.998, 0.0523, -0.0523, 0.998, 123.25, -45.5];
        let inv = AffineTransform::new(cols).inverse().unwrap();
        for (x, y) in [(0.0, 0.0), (4095.5, 17.0), (-3.0, 9000.0)] {
            let (xp, yp) = forward(cols, x, y);
            let (xb, yb) = pull(inv, xp, yp);
            assert!(
                (xb - x).abs() < 1e-9 && (yb - y).abs() < 1e-9,
                "{x},{y} → {xb},{yb}"
            );
        }
    }

    #[test]
    fn inverse_is_the_documented_expression() {
        // A case where the evaluation order matters in the last bit: pinned so a refactor that
        // reorders the arithmetic (and so breaks agreement with the oracle's inputs) fails here.
        let [a, b, c, d, e, f] = [
            0.9993908270190958,
            0.03489949670250097,
            -0.03489949670250097,
            0.9993908270190958,
            31.7,
            -12.9,
        ];
        let det = a * d - b * c;
        let expected = [
            d / det,
            -c / det,
            (c * f - d * e) / det,
            -b / det,
            a / det,
            (b * e - a * f) / det,
        ];
        let got = AffineTransform::new([a, b, c, d, e, f]).inverse().unwrap();
        assert_eq!(got.map(f64::to_bits), expected.map(f64::to_bits));
    }

    #[test]
    fn singular_matrix_is_a_transform_field_error() {
        let e = AffineTransform::new([1.0, 2.0, 2.0, 4.0, 3.0, 3.0])
            .inverse()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(e.to_string(), "transform: not invertible (determinant 0)");
        let e = AffineTransform::new([0.0; 6]).inverse().unwrap_err();
        assert!(
            e.to_string().starts_with("transform: not invertible"),
            "{e}"
        );
    }

    #[test]
    fn non_finite_coefficient_is_a_transform_field_error() {
        let e = AffineTransform::new([1.0, 0.0, 0.0, 1.0, f64::NAN, 0.0])
            .inverse()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(
            e.to_string(),
            "transform: coefficient 4 is NaN, expected a finite number"
        );
        let e = AffineTransform::new([f64::INFINITY, 0.0, 0.0, 1.0, 0.0, 0.0])
            .inverse()
            .unwrap_err();
        assert!(e.to_string().contains("coefficient 0 is inf"), "{e}");
    }

    #[test]
    fn overflowing_determinant_or_inverse_is_rejected() {
        // a·d overflows to infinity.
        let e = AffineTransform::new([1e200, 0.0, 0.0, 1e200, 0.0, 0.0])
            .inverse()
            .unwrap_err();
        assert!(e.to_string().contains("determinant inf"), "{e}");
        // det = 1e-310 (subnormal, not 0) but A = d / det overflows.
        let e = AffineTransform::new([1e-310, 0.0, 0.0, 1.0, 0.0, 0.0])
            .inverse()
            .unwrap_err();
        assert!(
            e.to_string().starts_with("transform: not invertible"),
            "{e}"
        );
        // A translation too large for the inverse's C = (c·f − d·e) / det.
        let e = AffineTransform::new([1e-300, 0.0, 0.0, 1e-8, 1e300, 0.0])
            .inverse()
            .unwrap_err();
        assert!(
            e.to_string().starts_with("transform: not invertible"),
            "{e}"
        );
    }
}
