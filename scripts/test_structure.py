"""Unit tests of scripts/structure.py on small synthetic crates."""
import pathlib
import tempfile
import unittest

import structure


def write(root, name, text):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class StructureTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.src = pathlib.Path(self.tmp.name) / 'src'

    def tearDown(self):
        self.tmp.cleanup()

    def test_a_cycle_between_modules_is_found(self):
        write(self.src, 'a.rs', 'use crate::b::B;\npub struct A;\n')
        write(self.src, 'b/mod.rs', 'use crate::a::A;\npub struct B;\n')
        self.assertEqual(structure.module_cycles(self.src), [['a', 'b']])

    def test_layers_and_mentions_in_comments_or_tests_are_not_cycles(self):
        write(self.src, 'a.rs', 'use crate::b::B;\n')
        write(self.src, 'b.rs', '// see crate::a\n#[cfg(test)]\nmod tests { use crate::a; }\n')
        self.assertEqual(structure.module_cycles(self.src), [])

    def test_a_long_function_is_found_and_a_short_one_is_not(self):
        body = ''.join(f'    let _x{i} = {{ 1 }};\n' for i in range(structure.MAX_FN_LINES))
        write(self.src, 'long.rs', 'pub fn long() {\n' + body + '}\n\nfn short() {\n    let s = "}";\n}\n')
        structure.ROOT = pathlib.Path(self.tmp.name)
        found = structure.long_functions(self.src)
        self.assertEqual(len(found), 1)
        self.assertIn('long is 102 lines', found[0])


if __name__ == '__main__':
    unittest.main()
