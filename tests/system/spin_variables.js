// A stand-in for Spin's `fermyon:spin/variables@2.0.0`, so that `jco serve` can run the Spin build
// (test_hosts.py maps the import here with `--jco-map`). Like Spin's environment provider it
// answers variable `name` from `SPIN_VARIABLE_<NAME>`; an unset one is `undefined`, as in Spin
// when spin.toml gives the component no such variable. jco turns a thrown error's `payload` into
// the `err` case of the WIT result.
export const variables = {
  get(name) {
    const value = process.env[`SPIN_VARIABLE_${name.toUpperCase()}`];
    if (value === undefined) {
      const error = new Error(`no variable ${name}`);
      error.payload = { tag: "undefined", val: `no variable for "emwrite"."${name}"` };
      throw error;
    }
    return value;
  },
};
