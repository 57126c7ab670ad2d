package extract

import (
	"archive/zip"
	"bytes"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Media types of the binary formats the registry recognises by content.
const (
	// TypePDF is the media type of PDF documents.
	TypePDF = "application/pdf"
	// TypeDOCX is the media type of Word (Office Open XML) documents.
	TypeDOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
)

// pdfHeaderWindow is how far into a file the "%PDF-" header may start: PDF readers
// (PDFium included) accept junk before it within the first kilobyte.
const pdfHeaderWindow = 1024

// Sniff returns the media type of data judged by its content alone: TypePDF for a
// "%PDF-" header within the first kilobyte, TypeDOCX for a ZIP archive whose central
// directory lists "word/document.xml", "application/zip" for any other ZIP archive,
// and "" when the content is none of these (text formats are not sniffed here).
// Only the ZIP central directory is read, nothing is decompressed.
func Sniff(data []byte) string {
	if isPDF(data) {
		return TypePDF
	}
	if !bytes.HasPrefix(data, []byte("PK\x03\x04")) && !bytes.HasPrefix(data, []byte("PK\x05\x06")) {
		return ""
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "application/zip"
	}
	for _, f := range zr.File {
		if f.Name == docxMain {
			return TypeDOCX
		}
	}
	return "application/zip"
}

func isPDF(data []byte) bool {
	return bytes.Contains(data[:min(len(data), pdfHeaderWindow+5)], []byte("%PDF-"))
}

// checkContent refuses data whose content contradicts its declared media type mt
// (clone.ErrInvalidInput): a PDF or DOCX that is not one, or a PDF, DOCX or other ZIP
// archive declared as another type (text, HTML, ...). Types the registry does not
// know the content of are not checked further.
func checkContent(op, mt string, data []byte) error {
	switch mt {
	case TypePDF:
		if !isPDF(data) {
			return errs.New(errs.InvalidInput, op, "declared %s but the content is not a PDF document (no %%PDF- header)", mt)
		}
		return nil
	case TypeDOCX:
		if got := Sniff(data); got != TypeDOCX {
			return errs.New(errs.InvalidInput, op, "declared a DOCX document but the content is not one (no word/document.xml in a ZIP archive)")
		}
		return nil
	}
	// A binary format declared as something else: PDF and ZIP files start with their
	// magic, so only the prefix is looked at (a text that merely mentions %PDF- later
	// on is not refused).
	var got string
	switch {
	case bytes.HasPrefix(data, []byte("%PDF-")):
		got = TypePDF
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		got = Sniff(data)
	}
	if got != "" {
		return errs.New(errs.InvalidInput, op, "declared %s but the content is a %s document", mt, got)
	}
	return nil
}

// detectByContent returns the content type of a PDF or DOCX document, else "".
func detectByContent(data []byte) string {
	switch t := Sniff(data); t {
	case TypePDF, TypeDOCX:
		return t
	}
	return ""
}
