// Prometheus text exposition format 0.0.4, written family by family: a
// family's # HELP and # TYPE lines once, then its samples. Label values are
// escaped (backslash, double quote, newline) as the format asks; numbers are
// written so that a parser reads back the same value. Not thread-safe.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace strangler {

using Label = std::pair<std::string_view, std::string_view>;

class Exposition {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  // Starts a family. `help` is one line.
  void Family(std::string_view name, Type type, std::string_view help);
  // A sample of the family begun last; `suffix` is "_bucket", "_sum" or
  // "_count" for a histogram's parts, "" otherwise.
  void Sample(std::string_view suffix, std::initializer_list<Label> labels, double value,
              std::initializer_list<Label> more = {});
  void Sample(double value) { Sample("", {}, value); }

  const std::string& text() const { return out_; }

 private:
  std::string name_;
  std::string out_;
};

// A number as the text format writes it: integers without a decimal point,
// +Inf, -Inf and NaN by name, others with enough digits to read back the same.
std::string FormatMetricValue(double v);

}  // namespace strangler
