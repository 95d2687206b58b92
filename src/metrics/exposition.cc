#include "metrics/exposition.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace strangler {
namespace {

void AppendLabelValue(std::string_view v, std::string* out) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '"':
        out->append("\\\"");
        break;
      case '\n':
        out->append("\\n");
        break;
      default:
        out->push_back(c);
    }
  }
}

void AppendLabels(std::initializer_list<Label> labels, bool* first, std::string* out) {
  for (const Label& l : labels) {
    out->push_back(*first ? '{' : ',');
    *first = false;
    out->append(l.first);
    out->append("=\"");
    AppendLabelValue(l.second, out);
    out->push_back('"');
  }
}

std::string_view TypeName(Exposition::Type t) {
  switch (t) {
    case Exposition::Type::kCounter:
      return "counter";
    case Exposition::Type::kGauge:
      return "gauge";
    case Exposition::Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    // The fewest digits that read back as the same double (0.0005, not
    // 0.00050000000000000001).
    for (int digits = 1; digits <= 17; ++digits) {
      std::snprintf(buf, sizeof buf, "%.*g", digits, v);
      if (std::strtod(buf, nullptr) == v) break;
    }
  }
  return buf;
}

void Exposition::Family(std::string_view name, Type type, std::string_view help) {
  name_.assign(name);
  out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out_.append("# TYPE ").append(name).append(" ").append(TypeName(type)).append("\n");
}

void Exposition::Sample(std::string_view suffix, std::initializer_list<Label> labels, double value,
                        std::initializer_list<Label> more) {
  out_.append(name_).append(suffix);
  bool first = true;
  AppendLabels(labels, &first, &out_);
  AppendLabels(more, &first, &out_);
  if (!first) out_.push_back('}');
  out_.push_back(' ');
  out_.append(FormatMetricValue(value));
  out_.push_back('\n');
}

}  // namespace strangler
