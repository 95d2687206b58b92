#include "decisions/json_text.h"

namespace strangler {

void AppendJsonString(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  // Runs of bytes that need no escape go in one append: paths and ids are
  // mostly such a run, and this is on every request's log line.
  size_t plain = 0;  // start of the run not yet written
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') continue;
    out->append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        // Other controls, DEL, and bytes >= 0x80 (paths and ids are bytes,
        // not always UTF-8: this keeps the JSON valid).
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
  }
  out->append(s.data() + plain, s.size() - plain);
  out->push_back('"');
}

bool JsonScanner::String(std::string_view* out, std::string* scratch) {
  if (!Eat('"')) return false;
  size_t start = p_;
  // Fast path: no escapes.
  while (p_ < s_.size() && s_[p_] != '"' && s_[p_] != '\\') ++p_;
  if (p_ >= s_.size()) return false;
  if (s_[p_] == '"') {
    if (out != nullptr) *out = s_.substr(start, p_ - start);
    ++p_;
    return true;
  }
  std::string* text = out != nullptr ? scratch : nullptr;
  if (text != nullptr) text->assign(s_.data() + start, p_ - start);
  while (p_ < s_.size()) {
    char c = s_[p_++];
    if (c == '"') {
      if (out != nullptr) *out = *text;
      return true;
    }
    if (c != '\\') {
      if (text != nullptr) text->push_back(c);
      continue;
    }
    if (p_ >= s_.size()) return false;
    char e = s_[p_++];
    char plain = 0;
    switch (e) {
      case '"':
        plain = '"';
        break;
      case '\\':
        plain = '\\';
        break;
      case '/':
        plain = '/';
        break;
      case 'b':
        plain = '\b';
        break;
      case 'f':
        plain = '\f';
        break;
      case 'n':
        plain = '\n';
        break;
      case 'r':
        plain = '\r';
        break;
      case 't':
        plain = '\t';
        break;
      case 'u': {
        uint32_t cp = 0;
        if (!Hex4(&cp)) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF && p_ + 1 < s_.size() && s_[p_] == '\\' &&
            s_[p_ + 1] == 'u') {
          p_ += 2;
          uint32_t lo = 0;
          if (!Hex4(&lo)) return false;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (text != nullptr) AppendCodePoint(cp, text);
        continue;
      }
      default:
        return false;
    }
    if (text != nullptr) text->push_back(plain);
  }
  return false;
}

bool JsonScanner::SkipValue() {
  char c = Peek();
  if (c == '"') return String(nullptr, nullptr);
  if (c != '{' && c != '[') return !Scalar().empty();
  int depth = 0;
  while (p_ < s_.size()) {
    char d = s_[p_];
    if (d == '"') {
      if (!String(nullptr, nullptr)) return false;
      continue;
    }
    ++p_;
    if (d == '{' || d == '[') ++depth;
    if (d == '}' || d == ']') {
      if (--depth == 0) return true;
    }
  }
  return false;
}

bool JsonScanner::Hex4(uint32_t* v) {
  if (p_ + 4 > s_.size()) return false;
  uint32_t x = 0;
  for (int i = 0; i < 4; ++i) {
    char c = s_[p_++];
    x <<= 4;
    if (c >= '0' && c <= '9')
      x |= static_cast<uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      x |= static_cast<uint32_t>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      x |= static_cast<uint32_t>(c - 'A' + 10);
    else
      return false;
  }
  *v = x;
  return true;
}

void JsonScanner::AppendCodePoint(uint32_t cp, std::string* out) {
  if (cp < 0x100) {  // the log writer's escape for one raw byte
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace strangler
