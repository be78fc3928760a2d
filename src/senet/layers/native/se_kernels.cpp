// senet's native SE kernels: the SE block's passes over a feature map, fused (CPU; float32 or
// bfloat16 maps, NCHW or channels-last; float32 per-channel values and sums).
//
//   scale(x, s, shortcut?, relu)  relu?(x · s + shortcut?)          forward: scale, residual sum, ReLU
//   relu_grad_sum(grad, out, x)   (g = grad · [out > 0], Σ_hw g·x)  backward: ReLU mask and d/ds
//   product_sum(grad, x)          Σ_hw grad·x                       d/ds without a ReLU
//   affine(g, s, d)               g · s + d                          d/dx = g·s + dz/HW
//   squeeze(x)                    mean_hw x (N×C float32)            the squeeze
//   squeeze_excite(x, shortcut?, w1, b1?, w2, b2?, gate, relu)       the whole SE block, forward
//                                 and backward in C++ (an autograd node of its own)
//   bn_squeeze_excite(y, shortcut?, bn…, w1, b1?, w2, b2?, …)       the same with the block's
//                                 last BatchNorm inside it
//
// The two blocks are also Python functions of this module (`direct`): the same dispatcher call
// as torch.ops.senet_native.*, without torch.ops' Python-side argument matching.
//
// Each is one pass with float32 arithmetic and one rounding to the map's dtype. Built on first use
// by senet/layers/native/__init__.py (torch.utils.cpp_extension, -O3 -march=native -fopenmp).
//
// A map is seen as `count` segments of `len` elements whose per-channel value repeats with period
// `period`: channels-last maps are N segments of HW·C (period C), NCHW maps N·C segments of HW
// (period 1). Per-channel values are tiled into a small float buffer of T = period·k ≥ 64
// elements, so that every inner loop runs over T contiguous elements and vectorizes; reductions
// keep 64 float32 accumulators in registers (see reduce_segments) and fold them by channel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>
#include <torch/python.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
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

// vectorize the loop that follows: GCC left the masked bf16 loop of relu_grad_sum scalar (13×
// slower) in some instantiations. Not on the element-wise passes: there it chose masked stores
// for short NCHW runs, 20× slower on AMD.
#define SENET_SIMD _Pragma("omp simd")

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
  // ≥ 64 elements: several vectors per per-channel pattern (channels-last), runs of up to 64 in
  // a plane (NCHW: 1.3–1.7× faster than runs of 16 at batch 1; runs of 256 are slower again)
  const int64_t min_tile = 64;
  g.tile = g.period * ((min_tile + g.period - 1) / g.period);
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

// Element-wise pass: calls body(offset, length, s_tile, d_tile, e_tile) over runs of at most
// `tile` elements that start on a multiple of `tile` within their segment; parallel over blocks.
// `d` and `e` (per-channel values like `s`) may be null; their tiles are then null too.
template <typename F>
void for_each_run(const Geo& g, const float* s, const float* d, const float* e, F body) {
  const int64_t T = g.tile;
  const int64_t tiles_per_seg = (g.len + T - 1) / T;
  const int64_t per_block = std::max<int64_t>(1, 16384 / T);
  const int64_t blocks_per_seg = (tiles_per_seg + per_block - 1) / per_block;
  at::parallel_for(0, g.count * blocks_per_seg, 1, [&](int64_t b, int64_t end) {
    std::vector<float> sbuf(T), dbuf(d ? T : 0), ebuf(e ? T : 0);
    int64_t filled = -1;
    for (int64_t blk = b; blk < end; ++blk) {
      const int64_t i = blk / blocks_per_seg;
      if (i != filled) {
        fill_tile(sbuf.data(), s, g, i);
        if (d) fill_tile(dbuf.data(), d, g, i);
        if (e) fill_tile(ebuf.data(), e, g, i);
        filled = i;
      }
      const int64_t t0 = (blk % blocks_per_seg) * per_block;
      const int64_t t1 = std::min(tiles_per_seg, t0 + per_block);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t start = t * T;
        body(i * g.len + start, std::min(T, g.len - start), sbuf.data(), d ? dbuf.data() : nullptr,
             e ? ebuf.data() : nullptr);
      }
    }
  });
}

// out = relu?(x * s + d? + shortcut?); d (per-channel, float32) only when Shift
template <bool Shift>
at::Tensor scale_pass(const at::Tensor& x, const at::Tensor& s, const at::Tensor& d,
                      const std::optional<at::Tensor>& shortcut, bool relu) {
  Geo g = geometry(x);
  if (shortcut) same_layout(x, *shortcut, "shortcut");
  at::Tensor sf = per_channel(s, g);
  at::Tensor df = Shift ? per_channel(d, g) : at::Tensor();
  at::Tensor out = at::empty_like(x);
  SENET_DISPATCH(x.scalar_type(), [&] {
    const scalar_t* __restrict__ xp = x.const_data_ptr<scalar_t>();
    const scalar_t* __restrict__ cp = shortcut ? shortcut->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* __restrict__ op = out.mutable_data_ptr<scalar_t>();
    for_each_run(g, sf.const_data_ptr<float>(), Shift ? df.const_data_ptr<float>() : nullptr, nullptr,
                 [&](int64_t off, int64_t m, const float* __restrict__ sv, const float* __restrict__ dv,
                     const float*) {
                   const scalar_t* __restrict__ a = xp + off;
                   scalar_t* __restrict__ o = op + off;
                   auto lin = [&](int64_t j) {
                     if constexpr (Shift) {
                       return ld(a[j]) * sv[j] + dv[j];
                     } else {
                       return ld(a[j]) * sv[j];
                     }
                   };
                   if (cp) {
                     const scalar_t* __restrict__ r = cp + off;
                     if (relu) {
                       for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(std::max(lin(j) + ld(r[j]), 0.f));
                     } else {
                       for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(lin(j) + ld(r[j]));
                     }
                   } else if (relu) {
                     for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(std::max(lin(j), 0.f));
                   } else {
                     for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(lin(j));
                   }
                 });
  });
  return out;
}

// out = relu?(x * s + shortcut?)
at::Tensor scale(const at::Tensor& x, const at::Tensor& s, const std::optional<at::Tensor>& shortcut,
                 bool relu) {
  return scale_pass<false>(x, s, at::Tensor(), shortcut, relu);
}

// gx = grad * s + d
at::Tensor affine(const at::Tensor& grad, const at::Tensor& s, const at::Tensor& d) {
  Geo g = geometry(grad);
  at::Tensor sf = per_channel(s, g), df = per_channel(d, g);
  at::Tensor out = at::empty_like(grad);
  SENET_DISPATCH(grad.scalar_type(), [&] {
    const scalar_t* __restrict__ gp = grad.const_data_ptr<scalar_t>();
    scalar_t* __restrict__ op = out.mutable_data_ptr<scalar_t>();
    for_each_run(g, sf.const_data_ptr<float>(), df.const_data_ptr<float>(), nullptr,
                 [&](int64_t off, int64_t m, const float* __restrict__ sv, const float* __restrict__ dv,
                     const float*) {
                   const scalar_t* __restrict__ a = gp + off;
                   scalar_t* __restrict__ o = op + off;
                   for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(ld(a[j]) * sv[j] + dv[j]);
                 });
  });
  return out;
}

// Reduction pass: out[chan(i, c)] = the sum over segment i's elements of channel c of the terms
// that body(offset, acc, width) adds into acc[0, width) for the `width` elements at `offset`.
// The accumulators are a local array of kLanes floats and `width` is a compile-time kLanes in
// the hot loops, so that they stay in registers (an accumulator array in memory costs a load and
// a store per vector and, on short tiles, a store-to-load latency per iteration):
//  - period ≥ kLanes (channels-last, C ≥ 64): blocks of kLanes channels, rows walked inside;
//  - period < kLanes (NCHW planes; channels-last with C < 64): runs of period·⌊kLanes/period⌋
//    contiguous elements, folded by period at the end.
// Segments are split further along HW when there are fewer of them than threads (batch 1).
constexpr int64_t kLanes = 64;
using Lanes = std::integral_constant<int64_t, kLanes>;

// channels-last with C >= kLanes: reductions walk blocks of kLanes channels (see below)
inline bool channel_blocks(const Geo& g) { return g.period >= kLanes; }

// K sums at once (K = 2: a sum and a sum of squares): acc holds K·kLanes floats, the k-th sum's
// accumulators at acc[k·kLanes, (k+1)·kLanes), and out K N×C arrays one after the other.
template <int K = 1, typename F>
void reduce_segments(const Geo& g, float* out, F body) {
  constexpr int64_t A = K * kLanes;  // accumulators per task
  const bool blocks = channel_blocks(g);
  const int64_t groups = blocks ? (g.period + kLanes - 1) / kLanes : 1;  // channel blocks
  const int64_t run = blocks ? g.period : g.period * (kLanes / g.period);  // elements per step
  const int64_t steps = (g.len + run - 1) / run;  // rows, or runs (the last may be short)
  const int64_t units = g.count * groups;
  const int64_t want = 2 * static_cast<int64_t>(at::get_num_threads());
  const int64_t chunks = std::min(steps, std::max<int64_t>(1, (want + units - 1) / units));
  const bool tree = !blocks && run == kLanes && (g.period & (g.period - 1)) == 0;  // period 2^k
  const int64_t nc = g.n * g.c;
  // out[...] of (segment i, group grp) from the accumulators of its `chunks` parts, in order
  auto fold = [&](int64_t i, int64_t grp, const float* parts) {
    for (int64_t k = 0; k < K; ++k) {
      const float* p = parts + k * kLanes;
      float* o = out + k * nc;
      if (blocks) {
        const int64_t c0 = grp * kLanes, width = std::min(kLanes, g.period - c0);
        for (int64_t j = 0; j < width; ++j) {
          float a = 0.f;
          for (int64_t ch = 0; ch < chunks; ++ch) a += p[ch * A + j];
          o[g.chan(i, c0 + j)] = a;
        }
      } else if (tree) {  // run = period · 2^m: halve the run with vector adds down to one period
        float acc[kLanes];
        std::copy(p, p + kLanes, acc);
        for (int64_t ch = 1; ch < chunks; ++ch)
          for (int64_t l = 0; l < kLanes; ++l) acc[l] += p[ch * A + l];
        for (int64_t w = kLanes / 2; w >= g.period; w /= 2)
          for (int64_t l = 0; l < w; ++l) acc[l] += acc[l + w];
        for (int64_t j = 0; j < g.period; ++j) o[g.chan(i, j)] = acc[j];
      } else {
        for (int64_t j = 0; j < g.period; ++j) {
          float a = 0.f;
          for (int64_t ch = 0; ch < chunks; ++ch)
            for (int64_t l = j; l < run; l += g.period) a += p[ch * A + l];
          o[g.chan(i, j)] = a;
        }
      }
    }
  };
  std::vector<float> part(chunks > 1 ? static_cast<size_t>(units * chunks * A) : 0);
  at::parallel_for(0, units * chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t i = task / (groups * chunks), grp = task / chunks % groups, ch = task % chunks;
      const int64_t s0 = ch * steps / chunks, s1 = (ch + 1) * steps / chunks;
      float acc[A] = {};
      if (blocks) {
        const int64_t c0 = grp * kLanes, width = std::min(kLanes, g.period - c0);
        const int64_t base = i * g.len + c0;
        if (width == kLanes) {
          for (int64_t r = s0; r < s1; ++r) body(base + r * run, acc, Lanes{});
        } else {
          for (int64_t r = s0; r < s1; ++r) body(base + r * run, acc, width);
        }
      } else {
        const int64_t base = i * g.len;
        const int64_t full = std::min(s1, g.len / run);  // steps of a whole run
        if (run == kLanes) {
          for (int64_t r = s0; r < full; ++r) body(base + r * run, acc, Lanes{});
        } else {
          for (int64_t r = s0; r < full; ++r) body(base + r * run, acc, run);
        }
        if (s1 > full) body(base + full * run, acc, g.len - full * run);
      }
      if (chunks == 1) {
        fold(i, grp, acc);
      } else {
        std::copy(acc, acc + A, part.begin() + task * A);
      }
    }
  });
  if (chunks > 1)
    for (int64_t u = 0; u < units; ++u) fold(u / groups, u % groups, part.data() + u * chunks * A);
}

// Shared by the d/ds passes: per segment, acc += g · x (and with K = 2 a second sum, of g) with
// g = grad masked where out <= 0 (the ReLU's backward) when `op` is given, written to `wp`;
// g = grad otherwise.
template <int K, typename scalar_t>
void grad_product_sum(const Geo& g, const scalar_t* gp, const scalar_t* op, const scalar_t* xp,
                      scalar_t* wp, float* gs) {
  if (op) {
    reduce_segments<K>(g, gs, [&](int64_t off, float* __restrict__ acc, auto m) {
      const scalar_t* __restrict__ a = gp + off;
      const scalar_t* __restrict__ b = xp + off;
      const scalar_t* __restrict__ o = op + off;
      scalar_t* __restrict__ w = wp + off;
      SENET_SIMD for (int64_t j = 0; j < m; ++j) {
        const float v = ld(o[j]) > 0.f ? ld(a[j]) : 0.f;
        w[j] = st<scalar_t>(v);
        acc[j] += v * ld(b[j]);
        if constexpr (K == 2) acc[kLanes + j] += v;
      }
    });
  } else {
    reduce_segments<K>(g, gs, [&](int64_t off, float* __restrict__ acc, auto m) {
      const scalar_t* __restrict__ a = gp + off;
      const scalar_t* __restrict__ b = xp + off;
      SENET_SIMD for (int64_t j = 0; j < m; ++j) {
        const float v = ld(a[j]);
        acc[j] += v * ld(b[j]);
        if constexpr (K == 2) acc[kLanes + j] += v;
      }
    });
  }
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
    grad_product_sum<1, scalar_t>(g, grad.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(),
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
    grad_product_sum<1, scalar_t>(g, grad.const_data_ptr<scalar_t>(), nullptr, x.const_data_ptr<scalar_t>(),
                               nullptr, gs.mutable_data_ptr<float>());
  });
  return gs;
}

// out = g * s + y * t + d (per-channel s, t, d): d/dy of the BatchNorm + SE node in training
at::Tensor affine2(const at::Tensor& grad, const at::Tensor& s, const at::Tensor& y, const at::Tensor& t,
                   const at::Tensor& d) {
  Geo g = geometry(grad);
  same_layout(grad, y, "y");
  at::Tensor sf = per_channel(s, g), tf = per_channel(t, g), df = per_channel(d, g);
  at::Tensor out = at::empty_like(grad);
  SENET_DISPATCH(grad.scalar_type(), [&] {
    const scalar_t* __restrict__ gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* __restrict__ yp = y.const_data_ptr<scalar_t>();
    scalar_t* __restrict__ op = out.mutable_data_ptr<scalar_t>();
    for_each_run(g, sf.const_data_ptr<float>(), df.const_data_ptr<float>(), tf.const_data_ptr<float>(),
                 [&](int64_t off, int64_t m, const float* __restrict__ sv, const float* __restrict__ dv,
                     const float* __restrict__ tv) {
                   const scalar_t* __restrict__ a = gp + off;
                   const scalar_t* __restrict__ b = yp + off;
                   scalar_t* __restrict__ o = op + off;
                   for (int64_t j = 0; j < m; ++j) o[j] = st<scalar_t>(ld(a[j]) * sv[j] + ld(b[j]) * tv[j] + dv[j]);
                 });
  });
  return out;
}

// 2×N×C float32: [0] = Σ_hw (y - k_c), [1] = Σ_hw (y - k_c)² in one pass. The shifts k (C
// values, a sample of each channel) keep both sums small, so that neither loses the spread when a
// channel's mean is large against it (the variance is Σ(y - k)²/P - (mean - k)²).
at::Tensor shifted_sums(const at::Tensor& y, const at::Tensor& shift) {
  Geo g = geometry(y);
  at::Tensor sums = at::empty({2, g.n, g.c}, y.options().dtype(at::kFloat));
  const at::Tensor k = shift.to(at::kFloat).contiguous();
  const float* kp = k.const_data_ptr<float>();
  // channels-last runs narrower than a block start on channel 0: lane l holds channel l mod C;
  // blocks of kLanes channels start on channel off mod C
  float ktile[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) ktile[l] = kp[l % g.c];
  const bool blocks = channel_blocks(g);
  SENET_DISPATCH(y.scalar_type(), [&] {
    const scalar_t* __restrict__ yp = y.const_data_ptr<scalar_t>();
    reduce_segments<2>(g, sums.mutable_data_ptr<float>(), [&](int64_t off, float* __restrict__ acc, auto m) {
      const scalar_t* __restrict__ a = yp + off;
      if (g.cl) {
        const float* __restrict__ kv = blocks ? kp + off % g.c : ktile;
        SENET_SIMD for (int64_t j = 0; j < m; ++j) {
          const float e = ld(a[j]) - kv[j];
          acc[j] += e;
          acc[kLanes + j] += e * e;
        }
      } else {
        const float kc = kp[off / g.len % g.c];
        SENET_SIMD for (int64_t j = 0; j < m; ++j) {
          const float e = ld(a[j]) - kc;
          acc[j] += e;
          acc[kLanes + j] += e * e;
        }
      }
    });
  });
  return sums;
}

// (g, sums): g = grad · [out > 0] when `out` is defined (written; grad itself otherwise) and the
// 2×N×C float32 sums [0] = Σ_hw g·y, [1] = Σ_hw g, in one pass
std::tuple<at::Tensor, at::Tensor> grad_sums(const at::Tensor& grad, const at::Tensor& out, const at::Tensor& y) {
  Geo g = geometry(y);
  same_layout(y, grad, "grad");
  const bool mask = out.defined();
  if (mask) same_layout(y, out, "out");
  at::Tensor gw = mask ? at::empty_like(y) : grad;
  at::Tensor sums = at::empty({2, g.n, g.c}, y.options().dtype(at::kFloat));
  SENET_DISPATCH(y.scalar_type(), [&] {
    grad_product_sum<2, scalar_t>(g, grad.const_data_ptr<scalar_t>(), mask ? out.const_data_ptr<scalar_t>() : nullptr,
                                  y.const_data_ptr<scalar_t>(), mask ? gw.mutable_data_ptr<scalar_t>() : nullptr,
                                  sums.mutable_data_ptr<float>());
  });
  return {gw, sums};
}

// ------------------------------------------------------------------------------------------
// The whole average-squeeze SE block with its residual sum and ReLU, as one autograd node:
// relu?(x · gate(W2 relu(W1 mean_hw(x) + b1) + b2) + shortcut?). The same arithmetic as
// senet.layers.fast_ops._SqueezeExcite (float32 excitation on the N×C descriptor, the gate
// rounded once to the map's dtype), without the Python interpreter between its ~40 ATen calls.
// ------------------------------------------------------------------------------------------
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor fc_matrix(const at::Tensor& w) {  // a 1×1 convolution's weight as a float32 matrix
  return w.reshape({w.size(0), -1}).to(at::kFloat);
}

at::Tensor linear(const at::Tensor& z, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::addmm(b.to(at::kFloat), z, w.t()) : at::mm(z, w.t());
}

// Small batches (N ≤ kSmallBatch, float32 weights): the FCs are matrix-vector products, which
// BLAS runs at a third of the memory bandwidth for these shapes (16–128 rows) and which cost
// a dispatch each; this loop reads every weight row once for all N descriptors.
constexpr int64_t kSmallBatch = 8;

template <int L>  // L independent lanes: the loops vectorize without reassociating a sum
inline float dot_lanes(const float* __restrict__ a, const float* __restrict__ b, int64_t n) {
  float acc[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int k = 0; k < L; ++k) acc[k] += a[j + k] * b[j + k];
  for (int k = 0; j + k < n; ++k) acc[k] += a[j + k] * b[j + k];
  for (int w = L / 2; w >= 1; w /= 2)  // a tree of vector adds, not L dependent scalar adds
    for (int k = 0; k < w; ++k) acc[k] += acc[k + w];
  return acc[0];
}

inline float dot(const float* a, const float* b, int64_t n) {
  return n >= 256 ? dot_lanes<32>(a, b, n) : dot_lanes<16>(a, b, n);
}

// y[n, r] = b[r] + w[r, :] · z[n, :] for a float32 R×K matrix w, then ReLU if `relu`
at::Tensor small_linear(const at::Tensor& z, const at::Tensor& w, const at::Tensor& b, bool relu) {
  const int64_t n = z.size(0), rows = w.size(0), k = w.size(1);
  const at::Tensor zc = z.contiguous(), wc = w.contiguous();
  const at::Tensor bc = b.defined() ? b.to(at::kFloat).contiguous() : at::Tensor();
  at::Tensor y = at::empty({n, rows}, z.options().dtype(at::kFloat));
  const float *zp = zc.const_data_ptr<float>(), *wp = wc.const_data_ptr<float>();
  const float* bp = bc.defined() ? bc.const_data_ptr<float>() : nullptr;
  float* yp = y.mutable_data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, k * n));
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t i = 0; i < n; ++i) {
        const float v = dot(wp + r * k, zp + i * k, k) + (bp ? bp[r] : 0.f);
        yp[i * rows + r] = relu ? std::max(v, 0.f) : v;
      }
    }
  });
  return y;
}

bool small_batch(const at::Tensor& z, const at::Tensor& w) {
  return z.size(0) <= kSmallBatch && w.scalar_type() == at::kFloat && z.scalar_type() == at::kFloat;
}

// h = relu(W1 z + b1)
at::Tensor hidden(const at::Tensor& z, const at::Tensor& w1m, const at::Tensor& b1) {
  return small_batch(z, w1m) ? small_linear(z, w1m, b1, true) : linear(z, w1m, b1).relu_();
}

// Σ_hw of each plane of a contiguous NCHW map with short planes: 16 float32 lanes per plane (one
// vector register), folded once per plane. reduce_segments' 64-lane accumulators cost a
// 64-element fold per plane, which dominates planes of a few hundred elements.
constexpr int64_t kShortPlane = 256;

at::Tensor short_plane_sums(const at::Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  at::Tensor z = at::empty({n, c}, x.options().dtype(at::kFloat));
  float* zp = z.mutable_data_ptr<float>();
  SENET_DISPATCH(x.scalar_type(), [&] {
    const scalar_t* __restrict__ xp = x.const_data_ptr<scalar_t>();
    at::parallel_for(0, n * c, std::max<int64_t>(1, 4096 / hw), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const scalar_t* __restrict__ a = xp + p * hw;
        float acc[16] = {};
        int64_t j = 0;
        for (; j + 16 <= hw; j += 16)
          for (int k = 0; k < 16; ++k) acc[k] += ld(a[j + k]);
        float tail = 0.f;
        for (; j < hw; ++j) tail += ld(a[j]);
        for (int w = 8; w >= 1; w /= 2)
          for (int k = 0; k < w; ++k) acc[k] += acc[k + w];
        zp[p] = acc[0] + tail;
      }
    });
  });
  return z;
}

// N×C float32 Σ_hw x: float32 NCHW maps by ATen's sum (a vectorized reduction of each plane);
// bf16 NCHW maps with short planes by short_plane_sums (batch 1, C = 1024 / 2048 with 14×14 /
// 7×7 planes: 14 / 14 µs against 28 µs by reduce_segments and 21 / 16 µs by ATen's sum); the
// rest by reduce_segments (bf16 56×56 planes: 24 µs against ATen's 58 at C = 256)
at::Tensor hw_sums(const at::Tensor& x) {
  if (x.is_contiguous() && x.scalar_type() == at::kFloat) return at::sum(x, {2, 3}, false, at::kFloat);
  if (x.is_contiguous() && x.size(2) * x.size(3) < kShortPlane) return short_plane_sums(x);
  Geo g = geometry(x);
  at::Tensor z = at::empty({g.n, g.c}, x.options().dtype(at::kFloat));
  SENET_DISPATCH(x.scalar_type(), [&] {
    const scalar_t* __restrict__ xp = x.const_data_ptr<scalar_t>();
    reduce_segments(g, z.mutable_data_ptr<float>(), [&](int64_t off, float* __restrict__ acc, auto m) {
      const scalar_t* __restrict__ a = xp + off;
      SENET_SIMD for (int64_t j = 0; j < m; ++j) acc[j] += ld(a[j]);
    });
  });
  return z;
}

// z[n, c] = mean_hw x: float32 sums, rounded once to the map's dtype (as at::sum in that dtype
// gives), then scaled
at::Tensor squeeze_mean(const at::Tensor& x) {
  at::Tensor z = hw_sums(x);
  float* zp = z.mutable_data_ptr<float>();
  const bool bf16 = x.scalar_type() == at::kBFloat16;
  const float inv_hw = static_cast<float>(1.0 / static_cast<double>(x.size(2) * x.size(3)));
  for (int64_t k = 0; k < z.numel(); ++k) zp[k] = (bf16 ? ld(st<c10::BFloat16>(zp[k])) : zp[k]) * inv_hw;
  return z;
}

at::Tensor apply_gate(const at::Tensor& t, int64_t gate) {
  if (gate == 0) return at::sigmoid(t);
  if (gate == 1) return at::tanh(t);
  return at::relu(t);
}

at::Tensor gate_backward(const at::Tensor& grad, const at::Tensor& s, int64_t gate) {
  if (gate == 0) return at::sigmoid_backward(grad, s);
  if (gate == 1) return at::tanh_backward(grad, s);
  return at::threshold_backward(grad, s, 0);
}

void check_gate(int64_t gate) {
  TORCH_CHECK(gate >= 0 && gate <= 2, "senet native: gate 0 (sigmoid), 1 (tanh) or 2 (relu)");
}

at::Tensor opt(const std::optional<at::Tensor>& t) { return t.has_value() ? *t : at::Tensor(); }

struct Forward {
  at::Tensor out, z, s, sx;  // output; float32 descriptor and gate; the gate in the map's dtype
};

Forward se_forward(const at::Tensor& x, const std::optional<at::Tensor>& shortcut, const at::Tensor& w1,
                   const std::optional<at::Tensor>& b1, const at::Tensor& w2, const std::optional<at::Tensor>& b2,
                   int64_t gate, bool relu) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);  // float32 excitation
  Forward f;
  f.z = squeeze_mean(x);
  const at::Tensor w1m = fc_matrix(w1), w2m = fc_matrix(w2);
  const at::Tensor h = hidden(f.z, w1m, opt(b1));
  f.s = apply_gate(small_batch(h, w2m) ? small_linear(h, w2m, opt(b2), false) : linear(h, w2m, opt(b2)), gate);
  f.sx = f.s.to(x.scalar_type());
  f.out = scale(x, f.sx, shortcut, relu);
  return f;
}

struct SqueezeExciteBlock : public torch::autograd::Function<SqueezeExciteBlock> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const std::optional<at::Tensor>& shortcut,
                            const at::Tensor& w1, const std::optional<at::Tensor>& b1, const at::Tensor& w2,
                            const std::optional<at::Tensor>& b2, int64_t gate, bool relu) {
    const Forward f = se_forward(x, shortcut, w1, b1, w2, b2, gate, relu);
    const at::Tensor &out = f.out, &z = f.z, &s = f.s, &sx = f.sx;
    ctx->save_for_backward({x, z, s, sx, relu ? out : at::Tensor(), w1, opt(b1), w2, opt(b2)});
    ctx->saved_data["gate"] = gate;
    ctx->saved_data["relu"] = relu;
    ctx->saved_data["shortcut"] = shortcut.has_value();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &z = saved[1], &s = saved[2], &sx = saved[3], &out = saved[4];
    const at::Tensor &w1 = saved[5], &b1 = saved[6], &w2 = saved[7], &b2 = saved[8];
    const int64_t gate = ctx->saved_data["gate"].toInt();
    const bool relu = ctx->saved_data["relu"].toBool();
    at::Tensor grad = grads[0];
    if (grad.strides() != x.strides()) grad = grad.contiguous(x.suggest_memory_format());
    const at::Tensor w1m = fc_matrix(w1), w2m = fc_matrix(w2);
    at::Tensor h = hidden(z, w1m, b1);  // recomputed: N×hidden, cheap
    at::Tensor g, gs;
    if (relu) {
      std::tie(g, gs) = relu_grad_sum(grad, out, x);
    } else {
      g = grad;
      gs = product_sum(grad, x);
    }
    at::Tensor gt = gate_backward(gs, s, gate);
    at::Tensor gh = at::threshold_backward(at::mm(gt, w2m), h, 0);
    // needs_input_grad counts the tensor arguments that were given (an absent optional has no edge)
    size_t edge = 0;
    auto needed = [&](bool given) { return given && ctx->needs_input_grad(edge++); };
    const bool need_x = needed(true), need_shortcut = needed(ctx->saved_data["shortcut"].toBool());
    const bool need_w1 = needed(true), need_b1 = needed(b1.defined());
    const bool need_w2 = needed(true), need_b2 = needed(b2.defined());
    variable_list result(8);  // one per argument of forward
    if (need_x) {
      at::Tensor d = at::mm(gh, w1m).mul_(1.0 / static_cast<double>(x.size(2) * x.size(3)));
      result[0] = affine(g, sx, d);
    }
    if (need_shortcut) result[1] = g;
    if (need_w1) result[2] = at::mm(gh.t(), z).view(w1.sizes()).to(w1.scalar_type());
    if (need_b1) result[3] = gh.sum(0).to(b1.scalar_type());
    if (need_w2) result[4] = at::mm(gt.t(), h).view(w2.sizes()).to(w2.scalar_type());
    if (need_b2) result[5] = gt.sum(0).to(b2.scalar_type());
    return result;
  }
};

at::Tensor squeeze_excite(const at::Tensor& x, const std::optional<at::Tensor>& shortcut, const at::Tensor& w1,
                          const std::optional<at::Tensor>& b1, const at::Tensor& w2,
                          const std::optional<at::Tensor>& b2, int64_t gate, bool relu) {
  check_gate(gate);
  return SqueezeExciteBlock::apply(x, shortcut, w1, b1, w2, b2, gate, relu);
}

// Below autograd (inference mode): the forward alone.
at::Tensor squeeze_excite_forward(const at::Tensor& x, const std::optional<at::Tensor>& shortcut,
                                  const at::Tensor& w1, const std::optional<at::Tensor>& b1, const at::Tensor& w2,
                                  const std::optional<at::Tensor>& b2, int64_t gate, bool relu) {
  check_gate(gate);
  return se_forward(x, shortcut, w1, b1, w2, b2, gate, relu).out;
}

// ------------------------------------------------------------------------------------------
// The block's last BatchNorm taken into the SE block: relu?(x · s + shortcut?) with x = BN(y) =
// a·y + b per channel and s = gate(W2 relu(W1 mean_hw x + b1) + b2). x is never written: one
// pass over y gives the BN's batch statistics (training) and the squeeze (mean_hw x = a·mean_hw y
// + b), one more the output relu?(y · a·s + b·s + shortcut?). Backward: one pass for the ReLU
// mask and Σ_hw g·y, Σ_hw g, one for d/dy (a per-(n, c) affine function of g and y, BatchNorm's
// backward with the SE block's terms folded in). BatchNorm's running statistics are updated in
// the forward as torch.nn.functional.batch_norm does (unbiased variance, `momentum` the factor).
// ------------------------------------------------------------------------------------------
struct BnForward {
  at::Tensor out, z, s, h, a, b, mean, invstd, sum;  // float32; sum = Σ_hw y per (n, c)
};

BnForward bn_se_forward(const at::Tensor& y, const std::optional<at::Tensor>& shortcut, const at::Tensor& bn_w,
                        const at::Tensor& bn_b, const at::Tensor& w1, const std::optional<at::Tensor>& b1,
                        const at::Tensor& w2, const std::optional<at::Tensor>& b2, at::Tensor& running_mean,
                        at::Tensor& running_var, bool training, double momentum, double eps, int64_t gate,
                        bool relu) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
  TORCH_CHECK(y.dim() == 4 && bn_w.numel() == y.size(1) && running_mean.numel() == y.size(1),
              "senet native: BatchNorm parameters must have one value per channel of the map");
  BnForward f;
  const int64_t hw = y.size(2) * y.size(3);
  const double count = static_cast<double>(y.size(0) * hw);
  if (training) {
    TORCH_CHECK(count > 1, "Expected more than 1 value per channel when training, got input size ", y.sizes());
    const at::Tensor shift = y.select(0, 0).select(1, 0).select(1, 0).to(at::kFloat);
    const at::Tensor sums = shifted_sums(y, shift);
    f.sum = sums[0] + shift * static_cast<double>(hw);
    const at::Tensor off = sums[0].sum(0).div_(count);  // mean - shift
    f.mean = shift + off;
    const at::Tensor var = sums[1].sum(0).div_(count).sub_(off * off).clamp_min_(0);
    f.invstd = (var + eps).rsqrt_();
    at::NoGradGuard no_grad;
    running_mean.mul_(1 - momentum).add_(f.mean.to(running_mean.scalar_type()), momentum);
    running_var.mul_(1 - momentum).add_((var * (count / (count - 1))).to(running_var.scalar_type()), momentum);
  } else {
    f.sum = hw_sums(y);
    f.mean = running_mean.to(at::kFloat);
    f.invstd = (running_var.to(at::kFloat) + eps).rsqrt_();
  }
  f.a = bn_w.to(at::kFloat) * f.invstd;
  f.b = bn_b.to(at::kFloat) - f.mean * f.a;
  f.z = f.sum * (f.a / static_cast<double>(hw)) + f.b;
  const at::Tensor w1m = fc_matrix(w1), w2m = fc_matrix(w2);
  f.h = hidden(f.z, w1m, opt(b1));
  f.s = apply_gate(small_batch(f.h, w2m) ? small_linear(f.h, w2m, opt(b2), false) : linear(f.h, w2m, opt(b2)), gate);
  f.out = scale_pass<true>(y, f.s * f.a, f.s * f.b, shortcut, relu);
  return f;
}

// The inference forward at small batches (N ≤ kSmallBatch, float32 parameters): the per-channel
// arithmetic in plain loops. As ~15 ATen calls on N×C tensors it cost more than the arithmetic
// (30–60 µs a block at batch 1, measured), a few per cent of a batch-1 SE-ResNet-50.
bool small_inference(const at::Tensor& y, std::initializer_list<at::Tensor> params) {
  if (y.size(0) > kSmallBatch) return false;
  for (const at::Tensor& p : params)
    if (p.defined() && (p.scalar_type() != at::kFloat || !p.is_contiguous())) return false;
  return true;
}

at::Tensor bn_se_inference(const at::Tensor& y, const std::optional<at::Tensor>& shortcut, const at::Tensor& bn_w,
                           const at::Tensor& bn_b, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                           const at::Tensor& b2, const at::Tensor& running_mean, const at::Tensor& running_var,
                           double eps, int64_t gate, bool relu) {
  const int64_t n = y.size(0), c = y.size(1);
  const float inv_hw = static_cast<float>(1.0 / static_cast<double>(y.size(2) * y.size(3)));
  const at::Tensor sum = hw_sums(y).contiguous();
  at::Tensor z = at::empty({n, c}, sum.options()), scale = at::empty({n, c}, sum.options());
  at::Tensor shift = at::empty({n, c}, sum.options());
  std::vector<float> a(c), b(c);
  const float *w = bn_w.const_data_ptr<float>(), *bias = bn_b.const_data_ptr<float>();
  const float *mean = running_mean.const_data_ptr<float>(), *var = running_var.const_data_ptr<float>();
  for (int64_t k = 0; k < c; ++k) {
    a[k] = w[k] / std::sqrt(var[k] + static_cast<float>(eps));
    b[k] = bias[k] - mean[k] * a[k];
  }
  const float* sp = sum.const_data_ptr<float>();
  float* zp = z.mutable_data_ptr<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k) zp[i * c + k] = sp[i * c + k] * (a[k] * inv_hw) + b[k];
  const at::Tensor h = small_linear(z, w1.reshape({w1.size(0), -1}), b1, true);
  const at::Tensor t = small_linear(h, w2.reshape({w2.size(0), -1}), b2, false);
  const float* tp = t.const_data_ptr<float>();
  float *ap = scale.mutable_data_ptr<float>(), *dp = shift.mutable_data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < c; ++k) {
      const float v = tp[i * c + k];
      const float g = gate == 0 ? 1.f / (1.f + std::exp(-v)) : gate == 1 ? std::tanh(v) : std::max(v, 0.f);
      ap[i * c + k] = g * a[k];
      dp[i * c + k] = g * b[k];
    }
  }
  return scale_pass<true>(y, scale, shift, shortcut, relu);
}

struct BnSqueezeExciteBlock : public torch::autograd::Function<BnSqueezeExciteBlock> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y, const std::optional<at::Tensor>& shortcut,
                            const at::Tensor& bn_w, const at::Tensor& bn_b, const at::Tensor& w1,
                            const std::optional<at::Tensor>& b1, const at::Tensor& w2,
                            const std::optional<at::Tensor>& b2, at::Tensor& running_mean, at::Tensor& running_var,
                            bool training, double momentum, double eps, int64_t gate, bool relu) {
    const BnForward f = bn_se_forward(y, shortcut, bn_w, bn_b, w1, b1, w2, b2, running_mean, running_var, training,
                                      momentum, eps, gate, relu);
    ctx->save_for_backward({y, relu ? f.out : at::Tensor(), f.z, f.s, f.h, f.a, f.b, f.mean, f.invstd, f.sum, w1,
                            opt(b1), w2, opt(b2), bn_w, bn_b});
    ctx->saved_data["gate"] = gate;
    ctx->saved_data["training"] = training;
    ctx->saved_data["shortcut"] = shortcut.has_value();
    return f.out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &y = saved[0], &out = saved[1], &z = saved[2], &s = saved[3], &h = saved[4];
    const at::Tensor &a = saved[5], &b = saved[6], &mean = saved[7], &invstd = saved[8], &sum = saved[9];
    const at::Tensor &w1 = saved[10], &b1 = saved[11], &w2 = saved[12], &b2 = saved[13];
    const at::Tensor &bn_w = saved[14], &bn_b = saved[15];
    const int64_t gate = ctx->saved_data["gate"].toInt();
    const bool training = ctx->saved_data["training"].toBool();
    at::Tensor grad = grads[0];
    if (grad.strides() != y.strides()) grad = grad.contiguous(y.suggest_memory_format());
    const double hw = static_cast<double>(y.size(2) * y.size(3)), count = y.size(0) * hw;
    const at::Tensor w1m = fc_matrix(w1), w2m = fc_matrix(w2);
    auto [g, sums] = grad_sums(grad, out, y);
    const at::Tensor gy = sums[0], g1 = sums[1];  // Σ_hw g·y, Σ_hw g
    const at::Tensor gt = gate_backward(gy * a + g1 * b, s, gate);  // d/ds = Σ_hw g·x
    const at::Tensor gh = at::threshold_backward(at::mm(gt, w2m), h, 0);
    const at::Tensor dz = at::mm(gh, w1m);
    // dx = g·s + dz/HW; BatchNorm's d/dβ = Σ dx and d/dγ = Σ dx·(y - mean)·invstd
    const at::Tensor dbeta = (s * g1 + dz).sum(0);
    const at::Tensor dgamma = ((s * gy + dz * sum / hw).sum(0) - mean * dbeta) * invstd;
    size_t edge = 0;
    auto needed = [&](bool given) { return given && ctx->needs_input_grad(edge++); };
    const bool need_y = needed(true), need_shortcut = needed(ctx->saved_data["shortcut"].toBool());
    const bool need_bn_w = needed(true), need_bn_b = needed(true);
    const bool need_w1 = needed(true), need_b1 = needed(b1.defined());
    const bool need_w2 = needed(true), need_b2 = needed(b2.defined());
    variable_list result(15);  // one per argument of forward
    if (need_y) {
      // dy = a·dx in inference mode; in training minus a·(Σdx + xhat·Σdx·xhat)/P
      const at::Tensor d = dz * (a / hw);
      if (training) {
        const at::Tensor t = a * invstd * dgamma / -count;  // per channel: the y term
        const at::Tensor c0 = a * (invstd * mean * dgamma - dbeta) / count;
        result[0] = affine2(g, a * s, y, t.expand_as(s), d + c0);
      } else {
        result[0] = affine(g, a * s, d);
      }
    }
    if (need_shortcut) result[1] = g;
    if (need_bn_w) result[2] = dgamma.to(bn_w.scalar_type());
    if (need_bn_b) result[3] = dbeta.to(bn_b.scalar_type());
    if (need_w1) result[4] = at::mm(gh.t(), z).view(w1.sizes()).to(w1.scalar_type());
    if (need_b1) result[5] = gh.sum(0).to(b1.scalar_type());
    if (need_w2) result[6] = at::mm(gt.t(), h).view(w2.sizes()).to(w2.scalar_type());
    if (need_b2) result[7] = gt.sum(0).to(b2.scalar_type());
    return result;
  }
};

at::Tensor bn_squeeze_excite_forward(const at::Tensor& y, const std::optional<at::Tensor>& shortcut,
                                     const at::Tensor& bn_w, const at::Tensor& bn_b, const at::Tensor& w1,
                                     const std::optional<at::Tensor>& b1, const at::Tensor& w2,
                                     const std::optional<at::Tensor>& b2, at::Tensor& running_mean,
                                     at::Tensor& running_var, bool training, double momentum, double eps,
                                     int64_t gate, bool relu) {
  check_gate(gate);
  if (!training && small_inference(y, {bn_w, bn_b, w1, opt(b1), w2, opt(b2), running_mean, running_var}))
    return bn_se_inference(y, shortcut, bn_w, bn_b, w1, opt(b1), w2, opt(b2), running_mean, running_var, eps, gate,
                           relu);
  return bn_se_forward(y, shortcut, bn_w, bn_b, w1, b1, w2, b2, running_mean, running_var, training, momentum, eps,
                       gate, relu)
      .out;
}

// Autograd: the node where a gradient is wanted, the forward alone otherwise (no_grad)
at::Tensor bn_squeeze_excite(const at::Tensor& y, const std::optional<at::Tensor>& shortcut, const at::Tensor& bn_w,
                             const at::Tensor& bn_b, const at::Tensor& w1, const std::optional<at::Tensor>& b1,
                             const at::Tensor& w2, const std::optional<at::Tensor>& b2, at::Tensor& running_mean,
                             at::Tensor& running_var, bool training, double momentum, double eps, int64_t gate,
                             bool relu) {
  check_gate(gate);
  auto wants = [](const at::Tensor& t) { return t.defined() && t.requires_grad(); };
  const bool grad = at::GradMode::is_enabled() &&
                    (wants(y) || wants(opt(shortcut)) || wants(bn_w) || wants(bn_b) || wants(w1) || wants(opt(b1)) ||
                     wants(w2) || wants(opt(b2)));
  if (!grad)
    return bn_squeeze_excite_forward(y, shortcut, bn_w, bn_b, w1, b1, w2, b2, running_mean, running_var, training,
                                     momentum, eps, gate, relu);
  return BnSqueezeExciteBlock::apply(y, shortcut, bn_w, bn_b, w1, b1, w2, b2, running_mean, running_var, training,
                                     momentum, eps, gate, relu);
}

}  // namespace

TORCH_LIBRARY(senet_native, m) {
  m.def("scale(Tensor x, Tensor s, Tensor? shortcut, bool relu) -> Tensor");
  m.def("relu_grad_sum(Tensor grad, Tensor out, Tensor x) -> (Tensor, Tensor)");
  m.def("product_sum(Tensor grad, Tensor x) -> Tensor");
  m.def("squeeze(Tensor x) -> Tensor");
  m.def("affine(Tensor grad, Tensor s, Tensor d) -> Tensor");
  m.def(
      "squeeze_excite(Tensor x, Tensor? shortcut, Tensor w1, Tensor? b1, Tensor w2, Tensor? b2, int gate, "
      "bool relu) -> Tensor");
  m.def(
      "bn_squeeze_excite(Tensor y, Tensor? shortcut, Tensor bn_weight, Tensor bn_bias, Tensor w1, Tensor? b1, "
      "Tensor w2, Tensor? b2, Tensor(a!) running_mean, Tensor(b!) running_var, bool training, float momentum, "
      "float eps, int gate, bool relu) -> Tensor");
}

TORCH_LIBRARY_IMPL(senet_native, Autograd, m) {
  m.impl("squeeze_excite", &squeeze_excite);
  m.impl("bn_squeeze_excite", &bn_squeeze_excite);
}

TORCH_LIBRARY_IMPL(senet_native, CPU, m) {
  m.impl("scale", &scale);
  m.impl("relu_grad_sum", &relu_grad_sum);
  m.impl("product_sum", &product_sum);
  m.impl("squeeze", &squeeze_mean);
  m.impl("affine", &affine);
  m.impl("squeeze_excite", &squeeze_excite_forward);
  m.impl("bn_squeeze_excite", &bn_squeeze_excite_forward);
}

// ------------------------------------------------------------------------------------------
// Direct Python entries for the two block ops: the same dispatcher call (autograd, inference
// mode) as torch.ops.senet_native.<op>, without torch.ops' argument matching against the schema
// in Python and the JIT's IValue conversions. At batch 1 that path is cold code after each
// convolution: 0.45 ms of a 65 ms SE-ResNet-50 forward (docs/performance.md). The Python side
// uses these only where torch.ops would do nothing else (no __torch_function__ subclass or mode).
// ------------------------------------------------------------------------------------------
namespace {

using SqueezeExciteSig = at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, const at::Tensor&,
                                    const std::optional<at::Tensor>&, const at::Tensor&,
                                    const std::optional<at::Tensor>&, int64_t, bool);
using BnSqueezeExciteSig = at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, const at::Tensor&,
                                      const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                      const at::Tensor&, const std::optional<at::Tensor>&, at::Tensor&, at::Tensor&,
                                      bool, double, double, int64_t, bool);

at::Tensor direct_squeeze_excite(const at::Tensor& x, const std::optional<at::Tensor>& shortcut, const at::Tensor& w1,
                                 const std::optional<at::Tensor>& b1, const at::Tensor& w2,
                                 const std::optional<at::Tensor>& b2, int64_t gate, bool relu) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("senet_native::squeeze_excite", "")
                             .typed<SqueezeExciteSig>();
  return op.call(x, shortcut, w1, b1, w2, b2, gate, relu);
}

at::Tensor direct_bn_squeeze_excite(const at::Tensor& y, const std::optional<at::Tensor>& shortcut,
                                    const at::Tensor& bn_w, const at::Tensor& bn_b, const at::Tensor& w1,
                                    const std::optional<at::Tensor>& b1, const at::Tensor& w2,
                                    const std::optional<at::Tensor>& b2, at::Tensor running_mean,
                                    at::Tensor running_var, bool training, double momentum, double eps, int64_t gate,
                                    bool relu) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("senet_native::bn_squeeze_excite", "")
                             .typed<BnSqueezeExciteSig>();
  return op.call(y, shortcut, bn_w, bn_b, w1, b1, w2, b2, running_mean, running_var, training, momentum, eps, gate,
                 relu);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("squeeze_excite", &direct_squeeze_excite);
  m.def("bn_squeeze_excite", &direct_bn_squeeze_excite);
}
