// libFuzzer harness: security::Allowlist::parse, which decides which public key may speak for
// which worker id, on arbitrary text.
//
// Beyond "no crash, no UB, only KeyError": the binding is one-to-one both ways, and a bound on
// the worker ids only ever refuses lists, never changes what an accepted list means.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "marina/security/keys.h"

namespace {

using marina::fuzz::bug;
using marina::security::Allowlist;
using marina::security::KeyError;

constexpr const char* kHarness = "fuzz_allowlist";
constexpr uint32_t kWorkers = 5;

std::optional<Allowlist> parse(std::string_view text, std::optional<uint32_t> workers) {
  try {
    return Allowlist::parse(text, "fuzz", workers);
  } catch (const KeyError&) {
    return std::nullopt;
  } catch (const std::exception& e) {
    bug(kHarness, std::string("parse threw something other than KeyError: ") + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::optional<Allowlist> any = parse(text, std::nullopt);
  const std::optional<Allowlist> bounded = parse(text, kWorkers);
  if (!bounded) return 0;
  if (!any) bug(kHarness, "a list accepted with --workers is refused without it");
  if (any->size() != bounded->size()) bug(kHarness, "the bound changed the number of entries");

  std::size_t found = 0;
  for (uint32_t id = 0; id < kWorkers; ++id) {
    const std::optional<std::string> key = bounded->key_of(id);
    if (!key) continue;
    ++found;
    if (bounded->worker_of(*key) != id) bug(kHarness, "key and id are not bound both ways");
    if (any->key_of(id) != key) bug(kHarness, "the bound changed a binding");
    if (!marina::security::is_z85_key(*key)) bug(kHarness, "accepted a malformed key");
  }
  if (found != bounded->size()) bug(kHarness, "an entry with an id >= the bound was accepted");
  if (bounded->key_of(kWorkers)) bug(kHarness, "an id >= the bound was accepted");
  return 0;
}
