// CurveZMQ key files and the allowlist: what marina-keygen writes reads back, and every
// malformed file is refused with its name and line.

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <doctest/doctest.h>

#include "marina/security/keys.h"

using namespace marina::security;

namespace {

std::filesystem::path temp_dir(const std::string& tag) {
  const auto d = std::filesystem::temp_directory_path() /
                 ("marina-keys-" + tag + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const KeyError& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("keys: a written keypair reads back, mode 0600, never overwritten") {
  const auto dir = temp_dir("pair");
  const KeyPair k = generate_keypair();
  CHECK(is_z85_key(k.public_key));
  CHECK(public_of(k.secret_key) == k.public_key);
  write_keypair(dir / "w0", k);
  struct stat st {};
  REQUIRE(::stat((dir / "w0.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const KeyPair back = read_secret_key(dir / "w0.key");
  CHECK(back.secret_key == k.secret_key);
  CHECK(back.public_key == k.public_key);
  CHECK(read_public_key(dir / "w0.pub") == k.public_key);
  CHECK(error_of([&] {
          write_keypair(dir / "w0", generate_keypair());
        }).find("refusing to overwrite") != std::string::npos);
  CHECK(read_secret_key(dir / "w0.key").secret_key == k.secret_key);  // untouched
  ::chmod((dir / "w0.key").c_str(), 0644);
  CHECK(error_of([&] { (void)read_secret_key(dir / "w0.key"); }).find("chmod 600") !=
        std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("keys: the allowlist binds ids to keys and refuses bad lines with file:line") {
  const std::string a = generate_keypair().public_key, b = generate_keypair().public_key;
  const auto list =
      Allowlist::parse("# fleet\n0 " + a + "\n\n  1\t" + b + "  # the Pi\n", "fleet.txt");
  CHECK(list.size() == 2);
  CHECK(list.worker_of(a) == 0u);
  CHECK(list.worker_of(b) == 1u);
  CHECK(list.key_of(1) == b);
  CHECK_FALSE(list.worker_of(generate_keypair().public_key));
  const auto bad = [](const std::string& text) {
    return error_of([&] { (void)Allowlist::parse(text, "f", 4); });
  };
  CHECK(bad("0 " + a + "\nzero " + b) == "f:2: worker id 'zero' is not a number");
  CHECK(bad("0 " + a + "\n0 " + b) == "f:2: worker id 0 listed twice");
  CHECK(bad("0 " + a + "\n1 " + a) == "f:2: key already bound to worker 0");
  CHECK(bad("7 " + a) == "f:1: worker id 7 out of range (--workers 4)");
  CHECK(bad("0 short") == "f:1: 'short' is not a public key (40 Z85 characters)");
  CHECK(bad("0") == "f:1: expected 'WORKER-ID PUBLIC-KEY'");
  CHECK(bad("0 " + a + " extra") == "f:1: expected 'WORKER-ID PUBLIC-KEY'");
  CHECK(bad(std::string("0 ") + std::string(40, '~')).find("not a public key") !=
        std::string::npos);
}
