#include "engine/snapshot_patch.h"

namespace cde {
namespace {

// The text of a field's key (a CBOR text item: a head, then the bytes).
std::string_view KeyOf(std::string_view body, const BodyLayout::Field& f) {
  const std::string_view item = body.substr(f.key, f.value - f.key);
  const int info = static_cast<uint8_t>(item[0]) & 31;
  const size_t head = info < 24 ? 1 : 1 + (size_t{1} << (info - 24));
  return item.substr(head);
}

std::string_view ValueOf(std::string_view body, const BodyLayout::Field& f) {
  return body.substr(f.value, f.end - f.value);
}

// Element `i` of list field `f`: from its start to the next one's, or to
// the field's end.
std::string_view ElementOf(LaidOutBody b, const BodyLayout::Field& f,
                           uint32_t i) {
  const std::vector<uint32_t>& starts = b.layout->elements;
  const uint32_t begin = starts[f.first_element + i];
  const uint32_t end =
      i + 1 < f.element_count ? starts[f.first_element + i + 1] : f.end;
  return b.bytes.substr(begin, end - begin);
}

}  // namespace

bool SnapshotPatch::Make(LaidOutBody base, LaidOutBody body) {
  set_.clear();
  unset_.clear();
  elements_used_ = 0;
  const std::vector<BodyLayout::Field>& was = base.layout->fields;
  const std::vector<BodyLayout::Field>& now = body.layout->fields;
  size_t bytes = 16;  // the patch's own keys and heads, roughly
  // Both lists are in key order (WriteSagaBody writes keys in byte order).
  size_t i = 0;
  size_t j = 0;
  while (i < was.size() || j < now.size()) {
    const std::string_view was_key =
        i < was.size() ? KeyOf(base.bytes, was[i]) : std::string_view();
    const std::string_view now_key =
        j < now.size() ? KeyOf(body.bytes, now[j]) : std::string_view();
    if (j == now.size() || (i < was.size() && was_key < now_key)) {
      unset_.push_back(was_key);
      bytes += was_key.size() + 1;
      ++i;
      continue;
    }
    if (i == was.size() || now_key < was_key) {
      set_.push_back({now_key, ValueOf(body.bytes, now[j])});
      bytes += now_key.size() + set_.back().value.size() + 1;
      ++j;
      continue;
    }
    const BodyLayout::Field& w = was[i++];
    const BodyLayout::Field& n = now[j++];
    const std::string_view value = ValueOf(body.bytes, n);
    if (ValueOf(base.bytes, w) == value) continue;
    if (!w.list || !n.list || w.element_count != n.element_count) {
      set_.push_back({now_key, value});
      bytes += now_key.size() + value.size() + 1;
      continue;
    }
    // The lists' entries are reused, with their room, patch after patch.
    if (elements_used_ == elements_.size()) elements_.emplace_back();
    Elements& changed = elements_[elements_used_++];
    changed.key = now_key;
    changed.changed.clear();
    bytes += now_key.size() + 2;
    for (uint32_t e = 0; e < n.element_count; ++e) {
      const std::string_view element = ElementOf(body, n, e);
      if (ElementOf(base, w, e) != element) {
        changed.changed.emplace_back(e, element);
        bytes += element.size() + 3;
      }
    }
  }
  // What a patch saves is mostly the snapshot's row (a memtable insert on
  // the writer), and what it costs is a fold for readers after a crash: it
  // pays as long as it is smaller than the snapshot it replaces.
  return bytes < body.bytes.size();
}

void SnapshotPatch::Write(CborWriter& w, int64_t updated_ms) const {
  // Keys in byte order, as every map the store writes.
  w.MapHead(1 + (elements_used_ == 0 ? 0 : 1) + (set_.empty() ? 0 : 1) +
            (unset_.empty() ? 0 : 1));
  if (elements_used_ != 0) {
    w.Text("elements");
    w.MapHead(elements_used_);
    for (size_t i = 0; i < elements_used_; ++i) {
      const Elements& e = elements_[i];
      w.Text(e.key);
      w.ArrayHead(e.changed.size());
      for (const auto& [index, value] : e.changed) {
        w.ArrayHead(2);
        w.Uint(index);
        w.Raw(value);
      }
    }
  }
  if (!set_.empty()) {
    w.Text("set");
    w.MapHead(set_.size());
    for (const Part& p : set_) {
      w.Text(p.key);
      w.Raw(p.value);
    }
  }
  if (!unset_.empty()) {
    w.Text("unset");
    w.ArrayHead(unset_.size());
    for (std::string_view key : unset_) w.Text(key);
  }
  w.Text("updated_ms");
  w.Int(updated_ms);
}

}  // namespace cde
