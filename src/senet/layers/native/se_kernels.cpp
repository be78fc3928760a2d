// senet's native SE kernels: the SE block's passes over a feature map, fused (CPU; float32 or
// bfloat16 maps, NCHW or channels-last; float32 per-channel values and sums).
//
//   scale(x, s, shortcut?, relu)  relu?(x · s + shortcut?)          forward: scale, residual sum, ReLU
//   relu_grad_sum(grad, out, x)   (g = grad · [out > 0], Σ_hw g·x)  backward: ReLU mask and d/ds
//   product_sum(grad, x)          Σ_hw grad·x                       d/ds without a ReLU
//   affine(g, s, d)               g · s + d                          d/dx = g·s + dz/HW
//
// Each is one pass with float32 arithmetic and one rounding to the map's dtype. Built on first use
// by senet/layers/native/__init__.py (torch.utils.cpp_extension, -O3 -march=native -fopenmp).
//
// A map is seen as `count` segments of `len` elements whose per-channel value repeats with period
// `period`: channels-last maps are N segments of HW·C (period C), NCHW maps N·C segments of HW
// (period 1). Per-channel values are tiled into a small float buffer of T = period·k ≥ 64
// elements, so that every inner loop runs over T contiguous elements and vectorizes; reductions
// keep T float32 accumulators and fold them by period at the end.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

inline float ld(float v) { return v; }
inline float ld(c10::BFloat16 v) {
  uint32_t u = static_cast<uint32_t>(v.x) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
template <typename T> inline T st(float f);
template <> inline float st<float>(float f) { return f; }
template <> inline c10::BFloat16 st<c10::BFloat16>(float f) {  // round to nearest even, NaN kept
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  r = (u & 0x7fffffffu) > 0x7f800000u ? ((u >> 16) | 0x40u) : r;
  return c10::BFloat16(static_cast<uint16_t>(r), c10::BFloat16::from_bits());
}

#define SENET_DISPATCH(TYPE, ...)                                                      \
  [&] {                                                                                \
    if ((TYPE) == at::kBFloat16) {                                                     \
      using scalar_t = c10::BFloat16;                                                  \
      __VA_ARGS__();                                                                   \
    } else {                                                                           \
      TORCH_CHECK((TYPE) == at::kFloat, "senet native: float32 or bfloat16 maps only"); \
      using scalar_t = float;                                                          \
      __VA_ARGS__();                                                                   \
    }                                                                                  \
  }()

struct Geo {
  int64_t n, c, hw;
  int64_t count, len, period, tile;
  bool cl;
  // index of the per-channel value of element j (j < period) of segment i
  int64_t chan(int64_t i, int64_t j) const { return cl ? i * c + j : i; }
};

Geo geometry(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.device().is_cpu(), "senet native: a 4-d CPU map is expected");
  Geo g{};
  g.n = x.size(0);
  g.c = x.size(1);
  g.hw = x.size(2) * x.size(3);
  g.cl = !x.is_contiguous();
  TORCH_CHECK(!g.cl || x.is_contiguous(at::MemoryFormat::ChannelsLast),
              "senet native: the map must be contiguous (NCHW or channels-last)");
  g.count = g.cl ? g.n : g.n * g.c;
  g.len = g.cl ? g.hw * g.c : g.hw;
  g.period = g.cl ? g.c : 1;
  g.tile = g.period * ((64 + g.period - 1) / g.period);
  return g;
}

void same_layout(const at::Tensor& x, const at::Tensor& y, const char* name) {
  TORCH_CHECK(y.sizes() == x.sizes() && y.strides() == x.strides() && y.scalar_type() == x.scalar_type(),
              "senet native: ", name, " must have the map's shape, strides and dtype");
}

at::Tensor per_channel(const at::Tensor& v, const Geo& g) {
  return v.reshape({g.n, g.c}).to(at::kFloat).contiguous();
}

// fill `buf` (tile elements) with the per-channel values of segment i
inline void fill_tile(float* buf, const float* v, const Geo& g, int64_t i) {
  for (int64_t j = 0; j < g.tile; ++j) buf[j] = v[g.chan(i, j % g.period)];
}

// Element-wise pass: calls body(offset, length, s_tile, d_tile) over runs of at most `tile`
// elements that start on a multiple of `tile` within their segment; parallel over blocks.
template <typename F>
void for_each_run(const Geo& g, const float* s, const float* d, F body) {
  const int64_t T = g.tile;
  const int64_t tiles_per_seg = (g.len + T - 1) / T;
  const int64_t per_block = std::max<int64_t>(1, 16384 / T);
  const int64_t blocks_per_seg = (tiles_per_seg + per_block - 1) / per_block;
  at::parallel_for(0, g.count * blocks_per_seg, 1, [&](int64_t b, int64_t e) {
    std::vector<float> sbuf(T), dbuf(d ? T : 0);
    int64_t filled = -1;
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t i = blk / blocks_per_seg;
      if (i != filled) {
        fill_tile(sbuf.data(), s, g, i);
        if (d) fill_tile(dbuf.data(), d, g, i);
        filled = i;
      }
      const int64_t t0 = (blk % blocks_per_seg) * per_block;
      const int64_t t1 = std::min(tiles_per_seg, t0 + per_block);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t start = t * T;
        body(i * g.len + start, std::min(T, g.len - start), sbuf.data(), d ? dbuf.data() : nullptr);
      }
    }
  });
}

// out = relu?(x * s + shortcut?)
at::Tensor scale(const at::Tensor& x, const at::Tensor& s, const std::optional<at::Tensor>& shortcut,
                 bool relu) {
  Geo g = geometry(x);
  if (shortcut) same_layout(x, *shortcut, "shortcut");
  at::Tensor sf = per_channel(s, g);
  at::Tensor out = at::empty_like(x);
  SENET_DISPATCH(x.scalar_type(), [&] {
    const scalar_t* __restrict__ xp = x.const_data_ptr<scalar_t>();
    const scalar_t* __restrict__ cp = shortcut ? shortcut->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* __restrict__ op = out.mutable_data_ptr<scalar_t>();
    for_each_run(g, sf.const_data_ptr<float>(), nullptr,
                 [&](int64_t off, int64_t m, const float* __restrict__ sv, const float*) {
                   const scalar_t* __restrict__ a = xp + off;
                   scalar_t* __restrict__ o = op + off;
                   if (cp) {
                     const scalar_t* __restrict__ r = cp + off;
                     if (relu) {
                       for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(std::max(ld(a[j]) * sv[j] + ld(r[j]), 0.f));
                     } else {
                       for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(ld(a[j]) * sv[j] + ld(r[j]));
                     }
                   } else if (relu) {
                     for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(std::max(ld(a[j]) * sv[j], 0.f));
                   } else {
                     for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(ld(a[j]) * sv[j]);
                   }
                 });
  });
  return out;
}

// gx = grad * s + d
at::Tensor affine(const at::Tensor& grad, const at::Tensor& s, const at::Tensor& d) {
  Geo g = geometry(grad);
  at::Tensor sf = per_channel(s, g), df = per_channel(d, g);
  at::Tensor out = at::empty_like(grad);
  SENET_DISPATCH(grad.scalar_type(), [&] {
    const scalar_t* __restrict__ gp = grad.const_data_ptr<scalar_t>();
    scalar_t* __restrict__ op = out.mutable_data_ptr<scalar_t>();
    for_each_run(g, sf.const_data_ptr<float>(), df.const_data_ptr<float>(),
                 [&](int64_t off, int64_t m, const float* __restrict__ sv, const float* __restrict__ dv) {
                   const scalar_t* __restrict__ a = gp + off;
                   scalar_t* __restrict__ o = op + off;
                   for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(ld(a[j]) * sv[j] + dv[j]);
                 });
  });
  return out;
}

// Reduction pass: per segment, body(offset, length, acc) adds into `tile` float accumulators,
// which are then folded by period into out[chan(i, ·)].
template <typename F>
void reduce_segments(const Geo& g, float* out, F body) {
  const int64_t T = g.tile;
  at::parallel_for(0, g.count, 1, [&](int64_t b, int64_t e) {
    std::vector<float> acc(T);
    for (int64_t i = b; i < e; ++i) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t start = 0; start < g.len; start += T) body(i * g.len + start, std::min(T, g.len - start), acc.data());
      for (int64_t j = 0; j < g.period; ++j) {
        float a = 0.f;
        for (int64_t k = j; k < T; k += g.period) a += acc[k];
        out[g.chan(i, j)] = a;
      }
    }
  });
}

// Shared by the two d/ds passes: per segment, acc += g · x with g = grad masked where out <= 0
// (the ReLU's backward) when `op` is given, written to `wp`; g = grad otherwise.
template <typename scalar_t>
void grad_product_sum(const Geo& g, const scalar_t* gp, const scalar_t* op, const scalar_t* xp,
                      scalar_t* wp, float* gs) {
  reduce_segments(g, gs, [&](int64_t off, int64_t m, float* __restrict__ acc) {
    const scalar_t* __restrict__ a = gp + off;
    const scalar_t* __restrict__ b = xp + off;
    if (op) {
      const scalar_t* __restrict__ o = op + off;
      scalar_t* __restrict__ w = wp + off;
      for (int64_t j = 0; j < m; ++j) {
        const float v = ld(o[j]) > 0.f ? ld(a[j]) : 0.f;
        w[j] = st<scalar_t>(v);
        acc[j] += v * ld(b[j]);
      }
    } else {
      for (int64_t j = 0; j < m; ++j) acc[j] += ld(a[j]) * ld(b[j]);
    }
  });
}

// (g, gs): g = grad where out > 0 else 0 (the ReLU's backward), gs[n, c] = sum_hw g · x (float32)
std::tuple<at::Tensor, at::Tensor> relu_grad_sum(const at::Tensor& grad, const at::Tensor& out,
                                                 const at::Tensor& x) {
  Geo g = geometry(x);
  same_layout(x, grad, "grad");
  same_layout(x, out, "out");
  at::Tensor gw = at::empty_like(x);
  at::Tensor gs = at::empty({g.n, g.c}, x.options().dtype(at::kFloat));
  SENET_DISPATCH(x.scalar_type(), [&] {
    grad_product_sum<scalar_t>(g, grad.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(),
                               x.const_data_ptr<scalar_t>(), gw.mutable_data_ptr<scalar_t>(),
                               gs.mutable_data_ptr<float>());
  });
  return {gw, gs};
}

// gs[n, c] = sum_hw grad · x (float32)
at::Tensor product_sum(const at::Tensor& grad, const at::Tensor& x) {
  Geo g = geometry(x);
  same_layout(x, grad, "grad");
  at::Tensor gs = at::empty({g.n, g.c}, x.options().dtype(at::kFloat));
  SENET_DISPATCH(x.scalar_type(), [&] {
    grad_product_sum<scalar_t>(g, grad.const_data_ptr<scalar_t>(), nullptr, x.const_data_ptr<scalar_t>(),
                               nullptr, gs.mutable_data_ptr<float>());
  });
  return gs;
}

}  // namespace

TORCH_LIBRARY(senet_native, m) {
  m.def("scale(Tensor x, Tensor s, Tensor? shortcut, bool relu) -> Tensor");
  m.def("relu_grad_sum(Tensor grad, Tensor out, Tensor x) -> (Tensor, Tensor)");
  m.def("product_sum(Tensor grad, Tensor x) -> Tensor");
  m.def("affine(Tensor grad, Tensor s, Tensor d) -> Tensor");
}

TORCH_LIBRARY_IMPL(senet_native, CPU, m) {
  m.impl("scale", &scale);
  m.impl("relu_grad_sum", &relu_grad_sum);
  m.impl("product_sum", &product_sum);
  m.impl("affine", &affine);
}
