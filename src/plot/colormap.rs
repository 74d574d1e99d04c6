//! Colour maps as piecewise-linear interpolation between anchor colours.

/// The colour maps gradviz draws with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colormap {
    /// Blue (negative) – white (0) – red (positive), ColorBrewer RdBu reversed. For signed maps.
    Diverging,
    /// Perceptually uniform dark-to-bright, for magnitudes.
    Viridis,
    /// White (0) to dark red, ColorBrewer YlOrRd: for non-negative maps (Grad-CAM,
    /// |gradient|) beside signed ones, so that white means "no effect" in both and print
    /// keeps the order light → dark.
    Sequential,
    /// Black to white.
    Gray,
}

const RDBU: [[f32; 3]; 11] = [
    [0.020, 0.188, 0.380],
    [0.129, 0.400, 0.675],
    [0.263, 0.576, 0.765],
    [0.573, 0.773, 0.871],
    [0.820, 0.898, 0.941],
    [0.969, 0.969, 0.969],
    [0.992, 0.859, 0.780],
    [0.957, 0.647, 0.510],
    [0.839, 0.376, 0.302],
    [0.698, 0.094, 0.169],
    [0.404, 0.000, 0.122],
];

const VIRIDIS: [[f32; 3]; 9] = [
    [0.267, 0.005, 0.329],
    [0.278, 0.175, 0.483],
    [0.229, 0.322, 0.546],
    [0.173, 0.449, 0.558],
    [0.128, 0.567, 0.551],
    [0.153, 0.680, 0.504],
    [0.361, 0.785, 0.388],
    [0.668, 0.862, 0.196],
    [0.993, 0.906, 0.144],
];

const YLORRD: [[f32; 3]; 9] = [
    [1.000, 1.000, 1.000],
    [1.000, 0.929, 0.627],
    [0.996, 0.851, 0.463],
    [0.996, 0.698, 0.298],
    [0.992, 0.553, 0.235],
    [0.988, 0.306, 0.165],
    [0.890, 0.102, 0.110],
    [0.741, 0.000, 0.149],
    [0.502, 0.000, 0.149],
];

fn interpolate(anchors: &[[f32; 3]], t: f64) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0) * (anchors.len() - 1) as f64;
    let i = (t.floor() as usize).min(anchors.len() - 2);
    let f = (t - i as f64) as f32;
    [0, 1, 2].map(|k| anchors[i][k] * (1.0 - f) + anchors[i + 1][k] * f)
}

impl Colormap {
    /// RGB in `[0, 1]` for a position `t` in `[0, 1]` along the map.
    pub fn rgb(self, t: f64) -> [f32; 3] {
        match self {
            Colormap::Diverging => interpolate(&RDBU, t),
            Colormap::Viridis => interpolate(&VIRIDIS, t),
            Colormap::Sequential => interpolate(&YLORRD, t),
            Colormap::Gray => [t.clamp(0.0, 1.0) as f32; 3],
        }
    }

    /// How far `t` is from the map's neutral point, in `[0, 1]`: the overlay opacity.
    pub fn strength(self, t: f64) -> f64 {
        match self {
            Colormap::Diverging => ((t - 0.5).abs() * 2.0).clamp(0.0, 1.0),
            Colormap::Viridis | Colormap::Gray | Colormap::Sequential => t.clamp(0.0, 1.0),
        }
    }
}
