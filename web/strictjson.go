package web

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// checkKeys checks that every object key of data names a field of t
// exactly. encoding/json matches keys case-insensitively, so without this
// {"Note": …} would fill note, and a client's misspelling would pass
// silently; DisallowUnknownFields does not catch it since "Note" matches.
// With allowUnknown, keys that match no field at all pass (a peer that
// may add fields), but a key that matches one only in another case is
// refused all the same.
func checkKeys(data []byte, t reflect.Type, allowUnknown bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(data, &obj) != nil || obj == nil {
			return nil // not an object: the decoder says what is wrong
		}
		fields := jsonFields(t)
		for k, v := range obj {
			ft, ok := fields[k]
			if !ok {
				for name := range fields {
					if strings.EqualFold(name, k) {
						return fmt.Errorf("field %q: keys are case-sensitive; the field is %q", k, name)
					}
				}
				if allowUnknown {
					continue
				}
				return fmt.Errorf("unknown field %q", k)
			}
			if err := checkKeys(v, ft, allowUnknown); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	case reflect.Slice, reflect.Array:
		var list []json.RawMessage
		if json.Unmarshal(data, &list) != nil {
			return nil
		}
		for i, v := range list {
			if err := checkKeys(v, t.Elem(), allowUnknown); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
	case reflect.Map:
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			return nil
		}
		for k, v := range m {
			if err := checkKeys(v, t.Elem(), allowUnknown); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	return nil
}

// jsonFields maps the JSON names of t's fields (embedded structs'
// included) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, ok := out[k]; !ok {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
