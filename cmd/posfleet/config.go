package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
	kongyaml "github.com/alecthomas/kong-yaml"
	"gopkg.in/yaml.v3"
)

// yamlLoader reads the --config file with kong-yaml, and refuses keys that
// name no flag: a misspelt option silently ignored is worse than an error.
func yamlLoader(r io.Reader) (kong.Resolver, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	inner, err := kongyaml.Loader(strings.NewReader(string(b)))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &checkedResolver{Resolver: inner, keys: flatten("", doc)}, nil
}

type checkedResolver struct {
	kong.Resolver
	keys []string
}

// Resolve gives the file's value for flag, unless the flag's environment
// variable is set: the environment wins over the file, as operators expect
// (kong on its own would let the file win).
func (c *checkedResolver) Resolve(kctx *kong.Context, parent *kong.Path, flag *kong.Flag) (any, error) {
	for _, env := range flag.Envs {
		if _, ok := os.LookupEnv(env); ok {
			return nil, nil
		}
	}
	return c.Resolver.Resolve(kctx, parent, flag)
}

// Validate reports every key of the file that is no flag of any command.
func (c *checkedResolver) Validate(app *kong.Application) error {
	known := map[string]bool{}
	var walk func(n *kong.Node, prefix string)
	walk = func(n *kong.Node, prefix string) {
		for _, f := range n.Flags {
			known[strings.ReplaceAll(prefix+f.Name, "-", ".")] = true
		}
		for _, ch := range n.Children {
			walk(ch, prefix+ch.Name+"-")
		}
	}
	walk(app.Node, "")
	var unknown []string
	for _, k := range c.keys {
		if !known[strings.ReplaceAll(k, "-", ".")] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config: unknown keys: %s (see posfleet --help and posfleet serve --help)", strings.Join(slices.Compact(unknown), ", "))
	}
	return nil
}

func flatten(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "-" + k
		}
		if sub, ok := v.(map[string]any); ok {
			out = append(out, flatten(key, sub)...)
			continue
		}
		out = append(out, key)
	}
	return out
}
