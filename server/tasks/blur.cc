// blur: one pass over the image, in strips of columns.
//
// Each strip (kStripColumns wide) is blurred top to bottom. For output row y
// the kernel needs the horizontal sums of input rows y - r .. y + r (clamped):
// it computes each input row's horizontal sums once, just before the vertical
// running sum first needs them, into a ring of 2r + 2 rows of the strip, and
// the vertical running sum adds the newest row and drops the oldest. So the
// scratch is the ring, one row of column sums and one row of prefix sums (at
// most 2 * 130 * 2048 + 4 * 2048 + 2 * 2177 bytes, about 540 KiB, in L2
// cache; a narrow image adds its transposed copy, see Blur(), and an image in
// pieces its row table, see RowTable) instead of 2 bytes per pixel, and the
// image is read once and written once. The old kernel wrote and re-read a
// width x height buffer of sums through main memory, and divided once per
// pixel.
//
// Where the time goes, and why the loops look as they do:
//   - The vertical pass is plain loops over contiguous arrays, which the
//     compiler vectorises (this file is built with -O3, see CMakeLists.txt;
//     Blur() is also compiled for AVX2, picked at run time where the CPU has
//     it, as the baseline x86-64 target has only 16-byte vectors). The mean's
//     division is a float multiplication (BlurMean in blur.h), three vector
//     instructions per 8 pixels with AVX2; a 32 x 32 -> 64-bit fixed-point
//     reciprocal measured 1.5-1.6x slower here, as SIMD has no 32-bit
//     multiply-high and the compiler widens to 64-bit lanes.
//   - The horizontal pass is a running sum, which does not vectorise: each
//     addition waits for the one before. It is written as prefix sums (one
//     load, one addition and one store per pixel) over the two halves of the
//     row at once (two independent chains of additions), and the window sums
//     are then differences of prefix sums, a vector loop. Prefix sums are kept
//     modulo 2^16: a difference is still exact, as a window sum is below
//     2^16.
#include "server/tasks/blur.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"

namespace compute::tasks {
namespace {

// Work between two polls of the token (tens of microseconds).
constexpr size_t kPollPixels = 64 * 1024;
// Columns per strip. The ring holds up to 2 * kMaxBlurRadius + 2 rows of it:
// 130 x 2048 x 2 bytes = 520 KiB at radius 64, 16 KiB at radius 1.
constexpr size_t kStripColumns = 2048;
// Narrower images, when taller than wide, are blurred as their transpose
// (see Blur()).
constexpr size_t kNarrowColumns = 16;

// Whether Blur() blurs a w x h image as its transpose (see there); its cost
// units and working bytes follow the same rule.
constexpr bool BlurredTransposed(size_t w, size_t h) {
  return w < kNarrowColumns && h > w;
}

// On x86-64, Blur() is compiled twice, for the baseline (16-byte vectors)
// and for AVX2 (32-byte), and the loader picks the one the CPU can run. Not
// under ThreadSanitizer: the loader calls the clones' resolver (an ifunc)
// while relocating, before TSan's runtime is up, and the instrumented
// resolver crashes the process at start.
#if defined(__SANITIZE_THREAD__)
#define COMPUTE_BLUR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define COMPUTE_BLUR_TSAN 1
#endif
#endif
#if defined(__x86_64__) && !defined(COMPUTE_BLUR_TSAN)
#define COMPUTE_BLUR_CLONES [[gnu::target_clones("avx2", "default")]]
#else
#define COMPUTE_BLUR_CLONES
#endif

static_assert(255 * (2 * kMaxBlurRadius + 1) <= UINT16_MAX,
              "horizontal sums must fit in uint16_t");

// Polls the token once per kPollPixels pixels of work, so that neither one
// 16M-pixel row nor 16M one-pixel rows delay a stop or slow the loop.
class Poller {
 public:
  explicit Poller(const CancelToken& cancel) : cancel_(cancel) {}

  // Call before doing `pixels` of work; true when a stop was requested.
  bool Stopped(size_t pixels) {
    pending_ += pixels;
    if (pending_ < kPollPixels) return false;
    pending_ = 0;
    return cancel_.stop_requested();
  }

 private:
  const CancelToken& cancel_;
  size_t pending_ = 0;
};

// Where the kernel finds its input rows (BlurStrips' `in`): row y of an image
// in one buffer (or of the transposed copy) starts at base + y * width; of an
// image in pieces, at table[y] (see RowTable). Two types, not one with a
// branch per row: BlurStrips is instantiated for each, so the one-buffer
// kernel's loops stay the ones it had before pieces (GCC would unswitch such
// a branch into two copies of the kernel in one function; see BlurTable).
struct ContiguousRows {
  const uint8_t* base;
  size_t width;
  const uint8_t* operator[](size_t y) const { return base + y * width; }
};
struct TableRows {
  const uint8_t* const* table;
  const uint8_t* operator[](size_t y) const { return table[y]; }
};

// Reads the image's bytes front to back out of its pieces (empty ones
// skipped): Next(n) returns the next n bytes in place where they lie in one
// piece, else gathered into `buffer` (n bytes). The caller never reads past
// the pieces' total, and n >= 1.
class PieceReader {
 public:
  explicit PieceReader(absl::Span<const absl::string_view> pieces)
      : pieces_(pieces) {}

  const uint8_t* Next(size_t n, uint8_t* buffer) {
    SkipSpent();
    const absl::string_view piece = pieces_[index_];
    if (piece.size() - offset_ >= n) {
      const auto* in_place =
          reinterpret_cast<const uint8_t*>(piece.data()) + offset_;
      offset_ += n;
      return in_place;
    }
    for (size_t filled = 0; filled < n;) {
      SkipSpent();
      const absl::string_view from = pieces_[index_];
      const size_t take = std::min(n - filled, from.size() - offset_);
      std::memcpy(buffer + filled, from.data() + offset_, take);
      filled += take;
      offset_ += take;
    }
    return buffer;
  }

 private:
  // Moves to the first piece with bytes left (there is one: see Next).
  void SkipSpent() {
    while (offset_ == pieces_[index_].size()) {
      ++index_;
      offset_ = 0;
    }
  }

  absl::Span<const absl::string_view> pieces_;
  size_t index_ = 0;   // the piece being read
  size_t offset_ = 0;  // bytes of it already read
};

// `row` of `height` of the image the kernel walks; of a transposed image,
// that is the caller's column of its width.
absl::Status Stopped(size_t row, size_t height, bool transposed) {
  return absl::CancelledError(absl::StrCat("blur stopped at ",
                                           transposed ? "column " : "row ", row,
                                           " of ", height));
}

// out[i] = sum of in[clamp(x0 + i + k, 0, w - 1)] over |k| <= r, for i <
// x1 - x0: one row's horizontal window sums over one strip. `prefix` is
// scratch for x1 - x0 + 2r + 1 values.
[[gnu::always_inline]] inline void RowSums(const uint8_t* in, size_t w,
                                           size_t r, size_t x0, size_t x1,
                                           uint16_t* prefix, uint16_t* out) {
  // prefix[j] = the sum of the strip's first j window columns, which are the
  // image's columns x0 - r, x0 - r + 1, ... clamped to [0, w - 1]; so
  // out[i] = prefix[i + 2r + 1] - prefix[i].
  const size_t n = x1 - x0;
  const size_t len = n + 2 * r;
  // Window columns j < left lie before column 0, j >= right past w - 1; the
  // edges' runs are filled by multiplication, which vectorises, so that a
  // narrow image costs no serial loop of O(radius) per row.
  const size_t left = std::min(len, r > x0 ? r - x0 : 0);
  const size_t right = std::max(left, std::min(len, w + r - x0));
  prefix[0] = 0;
  const uint32_t first = in[0];
  for (size_t j = 0; j < left; ++j) {
    prefix[j + 1] = static_cast<uint16_t>((j + 1) * first);
  }
  // Window columns left .. right - 1 are image columns x0 - r + j.
  const uint8_t* columns = in + (x0 + left - r);
  const size_t count = right - left;
  const size_t half = count / 2;
  uint16_t* p = prefix + left + 1;  // p[k] = prefix[left + k + 1]
  uint32_t a = prefix[left];
  uint32_t b = 0;  // the second half's sums, without the first half's
  for (size_t k = 0; k < half; ++k) {
    a += columns[k];
    p[k] = static_cast<uint16_t>(a);
    b += columns[half + k];
    p[half + k] = static_cast<uint16_t>(b);
  }
  for (size_t k = 2 * half; k < count; ++k) {
    b += columns[k];
    p[k] = static_cast<uint16_t>(b);
  }
  const auto offset = static_cast<uint16_t>(a);  // prefix[left + half]
  for (size_t k = half; k < count; ++k) {
    p[k] = static_cast<uint16_t>(p[k] + offset);
  }
  const uint32_t base = prefix[right];
  const uint32_t last = in[w - 1];
  for (size_t j = right; j < len; ++j) {
    prefix[j + 1] = static_cast<uint16_t>(base + (j + 1 - right) * last);
  }
  const size_t span = 2 * r + 1;
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<uint16_t>(prefix[i + span] - prefix[i]);
  }
}

// Blurs the w x h image whose row y is in[y] into `dst`, strip by strip (see
// the top of the file). kTransposed: `in` is the transpose of the caller's
// image, and the result goes to dst transposed back: in's row y, column x is
// dst[x * h + y].
template <bool kTransposed, typename Rows>
[[gnu::always_inline]] inline absl::Status BlurStrips(
    Rows in, size_t w, size_t h, size_t r, uint32_t* acc, uint16_t* ring,
    size_t ring_rows, uint16_t* prefix, Poller& poller, uint8_t* dst) {
  const auto area = static_cast<uint32_t>((2 * r + 1) * (2 * r + 1));
  const float scale = BlurMeanScale(area);
  const size_t strip = std::min(w, kStripColumns);
  for (size_t x0 = 0; x0 < w; x0 += strip) {
    const size_t n = std::min(strip, w - x0);
    const size_t x1 = x0 + n;
    // The first window, rows -r .. r: rows above 0 repeat row 0, rows below
    // h - 1 repeat row h - 1 (then reach = h - 1, already in the ring).
    const size_t reach = std::min(r, h - 1);
    for (size_t y = 0; y <= reach; ++y) {
      if (poller.Stopped(n)) return Stopped(y, h, kTransposed);
      RowSums(in[y], w, r, x0, x1, prefix, ring + y * strip);
    }
    const uint16_t* top = ring;
    const uint16_t* bottom = ring + reach * strip;
    const auto top_times = static_cast<uint32_t>(r + 1);
    const auto bottom_times = static_cast<uint32_t>(r - reach);
    for (size_t i = 0; i < n; ++i) {
      acc[i] = top_times * top[i] + bottom_times * bottom[i];
    }
    for (size_t k = 1; k <= reach; ++k) {
      const uint16_t* row = ring + k * strip;
      for (size_t i = 0; i < n; ++i) acc[i] += row[i];
    }
    // Slots of rows y + r + 1 (the row the next window adds), max(y - r, 0)
    // (the row it drops) and h - 1, kept without a division per row.
    size_t next_slot = (r + 1) % ring_rows;
    size_t drop_slot = 0;
    const size_t last_slot = (h - 1) % ring_rows;
    for (size_t y = 0; y < h; ++y) {
      if (poller.Stopped(n)) return Stopped(y, h, kTransposed);
      size_t add_slot = last_slot;
      if (y + r + 1 < h) {
        RowSums(in[y + r + 1], w, r, x0, x1, prefix, ring + next_slot * strip);
        add_slot = next_slot;
      }
      const uint16_t* add = ring + add_slot * strip;
      const uint16_t* sub = ring + drop_slot * strip;
      if constexpr (kTransposed) {
        uint8_t* out = dst + x0 * h + y;
        for (size_t i = 0; i < n; ++i) {
          out[i * h] = BlurMean(acc[i], area, scale);
          acc[i] = acc[i] + add[i] - sub[i];
        }
      } else {
        uint8_t* out = dst + y * w + x0;
        for (size_t i = 0; i < n; ++i) {
          out[i] = BlurMean(acc[i], area, scale);
          acc[i] = acc[i] + add[i] - sub[i];
        }
      }
      if (++next_slot == ring_rows) next_slot = 0;
      if (y >= r && ++drop_slot == ring_rows) drop_slot = 0;
    }
  }
  return absl::OkStatus();
}

// Rows of a w-wide image in pieces that lie in no one piece: those that hold
// the end of a non-empty piece other than at a row boundary, so at most one
// per boundary between pieces. O(pieces), a division only for a piece that
// reaches past the end of a row.
size_t StraddlingRows(absl::Span<const absl::string_view> pieces, size_t w) {
  size_t count = 0;
  size_t column = 0;  // where the pieces so far end, within their last row
  for (const absl::string_view piece : pieces) {
    if (piece.empty()) continue;
    const size_t end = column + piece.size();
    if (end < w) {
      // Ends inside the row it started in, which goes on into the next
      // piece: counted unless an earlier piece already ended inside it.
      if (column == 0) ++count;
      column = end;
    } else {
      column = end % w;
      if (column != 0) ++count;
    }
  }
  return count;
}

// The rows of a w x h image in several pieces (BoxBlurPieces in blur.h), for
// BlurStrips: row y points into the piece that holds it whole, or, when it
// straddles pieces, to its copy in `gathered`, allocated once (after counting
// the straddling rows) and filled in order. One walk over the pieces, front to
// back: O(pieces + rows), plus the straddling rows' bytes.
class RowTable {
 public:
  RowTable(absl::Span<const absl::string_view> pieces, size_t w, size_t h)
      : pieces_(pieces), w_(w), h_(h), rows_(new const uint8_t*[h]) {
    if (const size_t straddling = StraddlingRows(pieces, w); straddling > 0) {
      gathered_.reset(new uint8_t[straddling * w]);
    }
  }

  // Fills the table, polling the token as the kernel does; Cancelled once it
  // reports a stop.
  absl::Status Fill(Poller& poller) {
    PieceReader reader(pieces_);
    uint8_t* gather = gathered_.get();
    for (size_t y = 0; y < h_; ++y) {
      if (poller.Stopped(w_)) return Stopped(y, h_, false);
      rows_[y] = reader.Next(w_, gather);
      if (rows_[y] == gather) gather += w_;
    }
    return absl::OkStatus();
  }

  TableRows rows() const { return TableRows{rows_.get()}; }

 private:
  absl::Span<const absl::string_view> pieces_;
  size_t w_;
  size_t h_;
  std::unique_ptr<const uint8_t*[]> rows_;
  std::unique_ptr<uint8_t[]> gathered_;
};

// BlurStrips of a w x h image in several pieces (not transposed), through its
// row table. Apart from Blur(), so that Blur() inlines BlurStrips<false> once:
// with a second copy in the same function, GCC 12 made the one-buffer kernel
// 15-20% slower on wide images (kernel_bench).
COMPUTE_BLUR_CLONES absl::Status BlurTable(
    absl::Span<const absl::string_view> pieces, size_t w, size_t h, size_t r,
    uint32_t* acc, uint16_t* ring, size_t ring_rows, uint16_t* prefix,
    Poller& poller, uint8_t* dst) {
  RowTable table(pieces, w, h);
  if (absl::Status status = table.Fill(poller); !status.ok()) return status;
  return BlurStrips<false>(table.rows(), w, h, r, acc, ring, ring_rows, prefix,
                           poller, dst);
}

// Writes the blur of the w x h image in `pieces` (1 <= r <= kMaxBlurRadius)
// to `dst`. `contiguous`: the image in one buffer, when all its bytes are in
// one piece (then there is no row table), else null.
//
// A narrow image (w < kNarrowColumns, taller than wide) is blurred as its
// transpose, which is wide: the box is square and each axis is clamped on its
// own, so blurring the transpose and transposing back gives the same pixels.
// Strips as narrow as the image spend most of their time in per-row overhead
// (measured, ns per pixel, strips / transposed: 1 wide 8.4 / 1.2, 4 wide
// 3.3 / 1.2, 8 wide 2.3 / 1.6, 16 wide 1.4 / 1.7; 0.5 on wide images). The
// transposed copy of the input, 1 byte per pixel, then leads the scratch.
COMPUTE_BLUR_CLONES absl::Status Blur(
    absl::Span<const absl::string_view> pieces, const uint8_t* contiguous,
    size_t w, size_t h, size_t r, const CancelToken& cancel, uint8_t* dst) {
  const bool transposed = BlurredTransposed(w, h);
  const size_t width = transposed ? h : w;
  const size_t height = transposed ? w : h;
  const size_t copy_bytes = transposed ? w * h : 0;
  const size_t strip = std::min(width, kStripColumns);
  // Distinct rows a window and its successor touch: 2r + 2, or every row of
  // a shorter image.
  const size_t ring_rows = std::min(2 * r + 2, height);
  const size_t prefix_values = strip + 2 * r + 1;
  // The one scratch allocation: transposed input, column sums, ring, prefix
  // sums. (An unsigned char array provides storage in which the uint32_t and
  // uint16_t arrays are created implicitly; copy_bytes is rounded up to keep
  // them aligned.)
  const size_t copy_space = (copy_bytes + 15) / 16 * 16;
  std::unique_ptr<unsigned char[]> scratch(
      new unsigned char[copy_space + strip * sizeof(uint32_t) +
                        (ring_rows * strip + prefix_values) *
                            sizeof(uint16_t)]);
  auto* acc = reinterpret_cast<uint32_t*>(scratch.get() + copy_space);
  auto* ring = reinterpret_cast<uint16_t*>(acc + strip);
  uint16_t* prefix = ring + ring_rows * strip;
  Poller poller(cancel);
  if (!transposed) {
    if (contiguous != nullptr) {
      return BlurStrips<false>(ContiguousRows{contiguous, w}, w, h, r, acc,
                               ring, ring_rows, prefix, poller, dst);
    }
    return BlurTable(pieces, w, h, r, acc, ring, ring_rows, prefix, poller,
                     dst);
  }
  // The transpose, 64 input rows at a time: each of the copy's rows gets a
  // contiguous run of 64 bytes, and the input rows being read stay in L1
  // (writing one byte to each of w rows h bytes apart per input row would
  // make every write a cache miss, as h is often a multiple of 4 KiB). The
  // copy takes the image straight from its pieces, so an image in pieces
  // needs no row table here: a block of rows that straddles pieces (at most
  // kBlockRows * w < 1 KiB) is gathered on the stack first.
  uint8_t* copy = scratch.get();
  constexpr size_t kBlockRows = 64;
  uint8_t gathered[kBlockRows * kNarrowColumns];
  PieceReader reader(pieces);
  for (size_t y0 = 0; y0 < h; y0 += kBlockRows) {
    const size_t rows = std::min(kBlockRows, h - y0);
    if (poller.Stopped(rows * w)) return Stopped(y0, h, false);
    const uint8_t* block = reader.Next(rows * w, gathered);
    for (size_t x = 0; x < w; ++x) {
      uint8_t* to = copy + x * h + y0;
      const uint8_t* from = block + x;
      for (size_t k = 0; k < rows; ++k) to[k] = from[k * w];
    }
  }
  return BlurStrips<true>(ContiguousRows{copy, width}, width, height, r, acc,
                          ring, ring_rows, prefix, poller, dst);
}

}  // namespace

absl::Status ValidateBlur(const compute::v1::BlurRequest& request) {
  return ValidateBlur(request, request.pixels().size());
}

absl::Status ValidateBlur(const compute::v1::BlurRequest& request,
                          size_t pixel_bytes) {
  if (request.width() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("blur.width must be >= 1 (got ", request.width(), ")"));
  }
  if (request.height() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("blur.height must be >= 1 (got ", request.height(), ")"));
  }
  const uint64_t count = uint64_t{request.width()} * request.height();
  if (count > kMaxBlurPixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("blur.width * blur.height must be <= ", kMaxBlurPixels,
                     " (16 megapixels) (got ", request.width(), " * ",
                     request.height(), " = ", count, ")"));
  }
  if (pixel_bytes != count) {
    return absl::InvalidArgumentError(
        absl::StrCat("blur.pixels must hold width * height = ", count,
                     " bytes (got ", pixel_bytes, ")"));
  }
  if (request.radius() > kMaxBlurRadius) {
    return absl::InvalidArgumentError(
        absl::StrCat("blur.radius must be <= ", kMaxBlurRadius, " (got ",
                     request.radius(), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> BoxBlurPieces(
    absl::Span<const absl::string_view> pieces, uint32_t width, uint32_t height,
    uint32_t radius, const CancelToken& cancel) {
  const uint64_t count = uint64_t{width} * height;
  uint64_t total = 0;
  size_t non_empty = 0;
  const uint8_t* contiguous = nullptr;  // the last non-empty piece
  for (const absl::string_view piece : pieces) {
    if (piece.empty()) continue;
    total += piece.size();
    ++non_empty;
    contiguous = reinterpret_cast<const uint8_t*>(piece.data());
  }
  if (total != count) {
    return absl::InvalidArgumentError(
        absl::StrCat("BoxBlur: pixels must hold width * height = ", count,
                     " bytes (got ", total, ", the total of ", pieces.size(),
                     pieces.size() == 1 ? " piece)" : " pieces)"));
  }
  if (radius > kMaxBlurRadius) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BoxBlur: radius must be <= ", kMaxBlurRadius, " (got ", radius, ")"));
  }
  if (cancel.stop_requested()) return Stopped(0, height, false);
  if (radius == 0 || count == 0) {
    // A copy: the pieces, concatenated.
    std::string result;
    result.reserve(count);
    for (const absl::string_view piece : pieces) {
      if (!piece.empty()) result.append(piece.data(), piece.size());
    }
    return result;
  }

  std::string result(count, '\0');
  if (absl::Status status =
          Blur(pieces, non_empty == 1 ? contiguous : nullptr, width, height,
               radius, cancel, reinterpret_cast<uint8_t*>(result.data()));
      !status.ok()) {
    return status;
  }
  return result;
}

absl::StatusOr<std::string> BoxBlur(absl::string_view pixels, uint32_t width,
                                    uint32_t height, uint32_t radius,
                                    const CancelToken& cancel) {
  return BoxBlurPieces(absl::Span<const absl::string_view>(&pixels, 1), width,
                       height, radius, cancel);
}

absl::Status ValidateBlurTask(const compute::v1::RunRequest& request,
                              Payload payload) {
  if (payload.empty()) return ValidateBlur(request.blur());
  if (!request.blur().pixels().empty()) {
    return absl::InvalidArgumentError(
        "blur.pixels given twice (in the request and received apart)");
  }
  return ValidateBlur(request.blur(), PayloadSize(payload));
}

absl::Status RunBlurTask(const compute::v1::RunRequest& request,
                         Payload payload, const CancelToken& cancel,
                         compute::v1::RunResponse* response) {
  // Re-validated so that no caller can drive the kernel past its limits.
  if (absl::Status status = ValidateBlurTask(request, payload); !status.ok()) {
    return status;
  }
  const compute::v1::BlurRequest& blur = request.blur();
  absl::StatusOr<std::string> pixels =
      payload.empty() ? BoxBlur(blur.pixels(), blur.width(), blur.height(),
                                blur.radius(), cancel)
                      : BoxBlurPieces(payload, blur.width(), blur.height(),
                                      blur.radius(), cancel);
  if (!pixels.ok()) return pixels.status();
  compute::v1::BlurResult* result = response->mutable_blur();
  result->set_width(blur.width());
  result->set_height(blur.height());
  result->set_pixels(*std::move(pixels));
  return absl::OkStatus();
}

double BlurCostUnits(const compute::v1::RunRequest& request) {
  const compute::v1::BlurRequest& blur = request.blur();
  const size_t w = blur.width();
  const size_t h = blur.height();
  const double pixels = static_cast<double>(w) * static_cast<double>(h);
  if (blur.radius() == 0) {
    return pixels * kBlurCopyCostFraction + kBlurFixedCostUnits;
  }
  if (BlurredTransposed(w, h)) {
    // At least its pixels plus its transpose's rows (kBlurRowCostUnits
    // each), which only images up to 16 tall reach: so a larger image never
    // costs fewer units (before, 13x14 cost less than 13x13).
    return std::max(pixels * kBlurTransposedCostFactor,
                    pixels + kBlurRowCostUnits * static_cast<double>(w)) +
           kBlurFixedCostUnits;
  }
  const double strips =
      static_cast<double>((w + kStripColumns - 1) / kStripColumns);
  return pixels + kBlurRowCostUnits * static_cast<double>(h) * strips +
         kBlurFixedCostUnits;
}

int64_t BlurResponseBytes(const compute::v1::RunRequest& request) {
  const compute::v1::BlurRequest& blur = request.blur();
  return int64_t{blur.width()} * blur.height() + kBlurResponseHeaderBytes;
}

int64_t BlurWorkingBytes(const compute::v1::RunRequest& request,
                         Payload payload) {
  const compute::v1::BlurRequest& blur = request.blur();
  const size_t w = blur.width();
  const size_t h = blur.height();
  if (blur.radius() == 0) return 0;  // a copy, into the result
  if (BlurredTransposed(w, h)) {
    return static_cast<int64_t>(w * h);  // the transposed copy
  }
  size_t non_empty = 0;
  for (const absl::string_view piece : payload) non_empty += !piece.empty();
  if (non_empty <= 1) return 0;  // read in place
  // RowTable: a row start per row, and the rows that straddle pieces.
  return static_cast<int64_t>(h * sizeof(const uint8_t*) +
                              StraddlingRows(payload, w) * w);
}

}  // namespace compute::tasks
