package extract

import _ "unsafe" // for go:linkname

// pdfiumWASM is the PDFium WebAssembly module embedded by go-pdfium (its
// internal/pdfium_wasm package, which its webassembly package links in): the
// extractor rewrites it (see interruptible) before compiling it.
//
//go:linkname pdfiumWASM github.com/klippa-app/go-pdfium/internal/pdfium_wasm.Module
var pdfiumWASM []byte
